# The QEMU lab (lab/, cmd/slate-lab run by `slate lab`, `make demo`): QEMU with SeaBIOS and OVMF, iPXE (NIC ROMs for
# the VMs, ipxe.lkrn for the KVM probe), and the independent Redfish clients and DHCP server
# the lab's tests drive the virtual BMCs and netboots with.
DEB_PACKAGES += iproute2 qemu-system-x86 qemu-utils seabios ovmf ipxe ipxe-qemu dnsmasq-base python3-sushy redfishtool

.PHONY: lab-test
# Root, ≈2 minutes under TCG: two VMs netboot (SeaBIOS PXE and OVMF HTTP boot).
lab-test:
	$(GO) test -count=1 -timeout 10m ./lab/...

# The whole journey in the lab (also part of `make test`): two VMs enrolled by BMC are
# deployed, updated, rolled back and decommissioned; it prints the time of each phase.
.PHONY: e2e
e2e: deps build
	$(GO) test -count=1 -timeout 20m -run 'TestE2EJourney' -v ./test/
