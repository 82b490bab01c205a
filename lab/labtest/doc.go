// Package labtest holds the lab's tests (build tag lab): they boot the qemu lab
// (lab/up), deploy the stack into it with ./copyall.sh (vip mode, the routing
// mesh), walk through the landscape from the host through the forwarded mesh
// ports, and take the lab down again (lab/down).
//
//	go test -tags lab -count=1 -timeout 55m -run TestVIP ./lab/labtest              # 1 node (CI)
//	LAB_NODES=3 go test -tags lab -count=1 -timeout 60m -run TestMultiNode ./lab/labtest
//
// LAB_REUSE=1 uses a lab that is already up (and leaves it up); LAB_KEEP=1 leaves
// the lab up after the tests; LAB_SKIP_DEPLOY=1 skips ./copyall.sh.
package labtest
