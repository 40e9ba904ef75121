# PASS/FAIL checks for the host-side NVMe/TCP tests here (sourced). Every check runs and reports,
# rather than the first failure ending the test; `fail` is 1 once any has failed (exit $fail).
fail=0
# check NAME SHELL-CONDITION
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi; }
# expect_error NAME PATTERN CMD...: fails with exactly one line on stderr matching PATTERN.
expect_error() {
  local name=$1 pat=$2; shift 2
  local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  if [ $rc -ne 0 ] && [ "$(echo "$err" | wc -l)" = 1 ] && echo "$err" | grep -qE "$pat"; then echo "PASS $name"
  else echo "FAIL $name (rc=$rc: $err)"; fail=1; fi
}
