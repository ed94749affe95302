// Package flags parses the command line of temporal-dev.
//
// Two shapes are accepted so that either a person, a script or the SDK's
// testsuite.StartDevServer can drive the same binary:
//
//	temporal-dev --port 7233 --db .dev/temporal.db
//	temporal-dev server start-dev --ip 127.0.0.1 --port 7233 --headless --db-filename F
//
// The leading "server start-dev" words are optional and ignored. Flags may be
// written with one or two dashes and as "--name value" or "--name=value".
package flags
