//go:build tools

// Package peers keeps the coder CLI in this module's requirements; build.sh builds it with
// `go build -tags slim github.com/coder/coder/v2/cmd/coder`.
package peers

import _ "github.com/coder/coder/v2/cmd/coder"
