# DHCP (dhcp/): real peers for the tests (ISC dhclient, busybox udhcpc, dnsmasq as the plant's
# server) and the benchmark's load generator and reference servers (perfdhcp from kea-admin,
# kea-dhcp4, dnsmasq), and QEMU + OVMF for TestQEMUNetboot.
DEB_PACKAGES += isc-dhcp-client busybox-static dnsmasq-base kea-dhcp4-server kea-admin qemu-system-x86 ovmf ipxe-qemu

.PHONY: bench-dhcp fuzz-dhcp
bench-dhcp:
	bash test/bench/dhcp.sh

# Grow the fuzz corpus; copy new finds from $(go env GOCACHE)/fuzz/slate/dhcp/FuzzHandle into
# dhcp/testdata/fuzz/FuzzHandle to keep them as regression seeds.
fuzz-dhcp:
	$(GO) test ./dhcp/ -run '^$$' -fuzz FuzzHandle -fuzztime 120s
