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
