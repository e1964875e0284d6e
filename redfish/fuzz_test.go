package redfish

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// Every reply a BMC sends goes through checkDocument and then one of Slate's models; neither may
// panic on anything the network delivers. Seeds live in testdata/fuzz.

func FuzzCheckDocument(f *testing.F) {
	f.Add("/redfish/v1/Systems/1", []byte(`{"@odata.id":"/redfish/v1/Systems/1","PowerState":"On"}`))
	f.Add("/redfish/v1/", []byte(`{"@odata.id":"/redfish/v1"}`))
	f.Add("/redfish/v1/Systems/1", []byte(`{"@odata.id":"/redfish/v1/Managers/1"}`))
	f.Add("/redfish/v1/Systems/1", []byte(`{"@odata.id": "/redfish/v1/Systems/1", "PowerState": "O`))
	f.Add("/x", []byte(`[]`))
	f.Add("/x", []byte(`{"@odata.id":7}`))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		err := checkDocument(path, body)
		if err != nil && !errors.Is(err, ErrBadReply) {
			t.Fatalf("error %v is not ErrBadReply", err)
		}
		if err == nil && !json.Valid(body) {
			t.Fatal("invalid JSON accepted")
		}
	})
}

func FuzzParseErrorBody(f *testing.F) {
	f.Add([]byte(`{"error":{"code":"Base.1.8.GeneralError","message":"m","@Message.ExtendedInfo":[{"MessageId":"Base.1.8.PropertyValueNotInList","Message":"bad"}]}}`))
	f.Add([]byte(`<html>503 Service Unavailable</html>`))
	f.Add([]byte(`{"error":{"@Message.ExtendedInfo":[{}]}}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, msg := parseErrorBody(b)
		if len(msg) > 210+len(b) || len(id) > 2*len(b)+1 {
			t.Fatalf("message grew beyond the body: %q %q", id, msg)
		}
	})
}

func FuzzDecodeReplies(f *testing.F) {
	f.Add([]byte(`{"@odata.id":"/redfish/v1/Systems/1","PowerState":"On","Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideTarget@Redfish.AllowableValues":["Pxe"]},"Actions":{"#ComputerSystem.Reset":{"target":"/r","ResetType@Redfish.AllowableValues":["On"]}}}`))
	f.Add([]byte(`{"Attributes":{"A":1,"B":"x"},"@Redfish.Settings":{"SettingsObject":{"@odata.id":"/s"},"SupportedApplyTimes":["OnReset"],"Messages":[{"MessageId":"Base.1.0.SettingsFailed","RelatedProperties":["/Attributes/A"]}]}}`))
	f.Add([]byte(`{"TaskState":"Completed","Messages":[{"Message":"ok"}],"PercentComplete":100}`))
	f.Add([]byte(`{"MediaTypes":["CD"],"Image":null,"Inserted":true,"Actions":{"#VirtualMedia.InsertMedia":{"target":"/i"}}}`))
	f.Add([]byte(`{"Members":[{"@odata.id":"/a"},{}],"Members@odata.nextLink":"/b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var cs computerSystem
		_, _ = decodeTolerant(b, &cs)
		var bios biosModel
		_, _ = decodeTolerant(b, &bios)
		var vm virtualMediaModel
		_, _ = decodeTolerant(b, &vm)
		var task taskModel
		_, _ = decodeTolerant(b, &task)
		var si softwareInventory
		_, _ = decodeTolerant(b, &si)
		var e ethernetInterface
		_, _ = decodeTolerant(b, &e)
		_ = taskLocation(&reply{status: 202, header: http.Header{}, body: b})
		_ = detectVendor(b)
		_ = diffBIOS(map[string]any(bios.Attributes), nil, BIOSProfile{Attributes: map[string]any{"A": 1.0}})
	})
}
