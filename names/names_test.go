package names

import (
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{RequestWorkflowID("nodepool", "100-0000000001"), "nodepool/request/100-0000000001"},
		{DeleteWorkflowID("nodepool", "0000000007"), "nodepool/delete/0000000007"},
		{DeleteBatchWorkflowID("nodepool", "0000000007", 3, "0123abcd", 12), "nodepool/delete-batch/0000000007+2/0123abcd-12"},
		{LedgerWorkflowID("nodepool", "aws", "main"), "nodepool/ledger/aws/main"},
		{SweepWorkflowID("nodepool", "aws"), "nodepool/sweep/aws"},
		{ProviderTaskQueue("nodepool", "aws"), "nodepool-provider-aws"},
		{PoolID("launcher", "aws", "main"), "launcher-PoolWorker.aws-main"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestLockOwner(t *testing.T) {
	tests := []struct {
		workflowID, chain, owner string
	}{
		{"nodepool/request/100-0000000001", "3f0c1b2a-9d3e-4c55-8a1e-2b7f1c0d9e11", "nodepool/request/100-0000000001@3f0c1b2a-9d3e-4c55-8a1e-2b7f1c0d9e11"},
		{"nodepool/delete/0000000007", "", "nodepool/delete/0000000007"},
		{"tq@site/request/1", "abc", "tq@site/request/1@abc"},
	}
	for _, tt := range tests {
		owner := LockOwner(tt.workflowID, tt.chain)
		if owner != tt.owner {
			t.Errorf("LockOwner(%q, %q) = %q, want %q", tt.workflowID, tt.chain, owner, tt.owner)
		}
		if tt.chain == "" {
			continue
		}
		w, c := ParseLockOwner(owner)
		if w != tt.workflowID || c != tt.chain {
			t.Errorf("ParseLockOwner(%q) = %q, %q", owner, w, c)
		}
	}
	if w, c := ParseLockOwner("plain-owner"); w != "plain-owner" || c != "" {
		t.Errorf("ParseLockOwner(plain) = %q, %q", w, c)
	}
}

func TestPoolInstances(t *testing.T) {
	const base = "host-PoolWorker.aws-main"
	const inst = "0123456789abcdef0123456789abcdef"
	other := "host-PoolWorker.aws-main-2-" + inst
	mine := PoolInstanceID(base, inst)
	if mine != base+"-"+inst {
		t.Fatalf("PoolInstanceID = %q", mine)
	}
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{base, true},
		{mine, true},
		{other, false},
		{base + "-0123", false},
		{base + "-0123456789ABCDEF0123456789ABCDEF", false},
		{"host-PoolWorker.aws-mai", false},
	} {
		if got := IsPoolInstance(tt.id, base); got != tt.want {
			t.Errorf("IsPoolInstance(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
	restarted := PoolInstanceID(base, "ffffffffffffffffffffffffffffffff")
	for _, tt := range []struct {
		name       string
		declinedBy []string
		registered []string
		declined   bool
		ids        []string
	}{
		{"registered and declined by it", []string{mine}, []string{mine, other}, true, []string{mine}},
		{"declined before a restart is revisited", []string{mine}, []string{restarted}, false, []string{restarted}},
		{"declined by one of two processes", []string{mine}, []string{mine, restarted}, true, []string{mine, restarted}},
		{"another pool's decline is not ours", []string{other}, []string{mine}, false, []string{mine}},
		{"not registered: any id of the pool", []string{mine}, nil, true, []string{base}},
		{"not registered: the plain id", []string{base}, []string{other}, true, []string{base}},
		{"not registered, not declined", []string{other}, nil, false, []string{base}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := PoolDeclined(tt.declinedBy, base, tt.registered); got != tt.declined {
				t.Errorf("PoolDeclined = %v, want %v", got, tt.declined)
			}
			if got := PoolDeclineIDs(base, tt.registered); !slices.Equal(got, tt.ids) {
				t.Errorf("PoolDeclineIDs = %v, want %v", got, tt.ids)
			}
		})
	}
}
