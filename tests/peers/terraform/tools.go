//go:build tools

// Package peers keeps terraform in this module's requirements; build.sh builds it with
// `go build github.com/hashicorp/terraform`.
package peers

import _ "github.com/hashicorp/terraform"
