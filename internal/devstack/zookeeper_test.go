package devstack

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCons(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[int64]int64
	}{
		{"sessions and the asking connection", ` /127.0.0.1:41234[1](queued=0,recved=1234,sent=1235,sid=0x1000a2b3c4d0001,lop=GETD,est=1733300000000,to=10000,lcxid=0x4d2,lzxid=0x20,lresp=123,llat=0,minlat=0,avglat=0,maxlat=3)
 /127.0.0.1:41240[1](queued=0,recved=7,sent=7,sid=0x1000a2b3c4d0002,lop=PING,est=1733300000001,to=10000,lcxid=0x2,lzxid=0xffffffffffffffff,lresp=1,llat=0,minlat=0,avglat=0,maxlat=0)
 /127.0.0.1:41250[0](queued=0,recved=1,sent=0)
`, map[int64]int64{0x1000a2b3c4d0001: 1234, 0x1000a2b3c4d0002: 7}},
		{"empty", "", map[int64]int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCons(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
