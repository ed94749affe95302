package main

import (
	"io"

	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // the postgres12 plugin of the SQL tool
	"go.temporal.io/server/tools/sql"
)

// runSQLTool is "temporal-dev sql-tool": Temporal's temporal-sql-tool
// (create-database, setup-schema, update-schema, ...) with the PostgreSQL
// plugin and the server's embedded schema files, for example
//
//	temporal-dev sql-tool --plugin postgres12 --ep 127.0.0.1 -p 5432 -u temporal --db temporal \
//	    update-schema --schema-name postgresql/v12/temporal
func runSQLTool(args []string, stderr io.Writer) int {
	if err := sql.RunTool(append([]string{"temporal-sql-tool"}, args...)); err != nil {
		_, _ = io.WriteString(stderr, "temporal-dev sql-tool: "+err.Error()+"\n")
		return 1
	}
	return 0
}
