// Package cmdtest holds no code: its test builds every binary of the module
// the way ./copyall.sh does and checks that each one configures itself the
// one way (internal/conf): -h prints the usage and exits 0, a malformed
// variable exits 2 naming the variable, -version prints the build's VCS stamp.
package cmdtest
