package zookeeper

import (
	"testing"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
