//go:build tools

// Package peers keeps the coder terraform provider in this module's requirements; build.sh
// builds it with `go build github.com/coder/terraform-provider-coder/v2`.
package peers

import _ "github.com/coder/terraform-provider-coder/v2"
