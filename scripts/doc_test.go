// Package scripts_test checks the shell tools under scripts/ and the way ./copyall.sh uses
// them, by running them with a PATH of fakes: no package is installed, no engine touched.
package scripts_test
