# Shared by scripts/test, scripts/sim and .ci/run: install Debian/Ubuntu packages the project needs.

softhsm_present() {
  local p
  for p in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so; do
    [[ -e $p ]] && return 0
  done
  return 1
}

apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "== installing: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

install_test_deps() {
  local need=()
  softhsm_present || need+=(softhsm2)
  command -v softhsm2-util >/dev/null || need+=(softhsm2)
  command -v pkcs11-tool >/dev/null || need+=(opensc)
  command -v openssl >/dev/null || need+=(openssl)
  # libxenvchan for the `xen` link backend (compiled and linked in tests; it cannot run without Xen).
  [[ -e /usr/include/libxenvchan.h ]] || need+=(libxen-dev)
  if ((${#need[@]})); then
    apt_install "${need[@]}"
  fi
  softhsm_present || { echo "SoftHSM2 is still missing after install" >&2; return 1; }
}
