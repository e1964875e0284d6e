# redfish/: the client is tested against redfishtest (DMTF mockups from ../shared/redfish-mockups),
# and redfishtest itself is checked by real Redfish clients: python3-sushy and redfishtool.
DEB_PACKAGES += python3 python3-sushy redfishtool

.PHONY: test-redfish fuzz-redfish
test-redfish:
	$(GO) test -count=1 ./redfish/...

# A short run of every reply-parsing fuzz target; crashers land in redfish/testdata/fuzz.
fuzz-redfish:
	@for f in FuzzCheckDocument FuzzParseErrorBody FuzzDecodeReplies FuzzParseProfiles; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s ./redfish/ || exit 1; \
	done
