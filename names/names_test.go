package names

import "testing"

func TestNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{RequestWorkflowID("nodepool", "100-0000000001"), "nodepool/request/100-0000000001"},
		{DeleteWorkflowID("nodepool", "0000000007"), "nodepool/delete/0000000007"},
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
