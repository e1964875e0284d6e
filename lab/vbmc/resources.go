package vbmc

import (
	"context"
	"strings"
)

// resource renders the resource at path, or reports that there is none.
func (b *BMC) resource(ctx context.Context, path string) (map[string]any, bool) {
	switch {
	case path == "/redfish":
		return map[string]any{"v1": root + "/"}, true
	case path == root:
		return b.serviceRoot(), true
	case path == root+"/Systems":
		return collection(path, "#ComputerSystemCollection.ComputerSystemCollection", "Computer System Collection", sysPath), true
	case path == sysPath:
		return b.system(ctx), true
	case path == sysPath+"/EthernetInterfaces":
		return collection(path, "#EthernetInterfaceCollection.EthernetInterfaceCollection", "Ethernet Interfaces", path+"/1"), true
	case path == sysPath+"/EthernetInterfaces/1":
		return map[string]any{
			"@odata.id": path, "@odata.type": "#EthernetInterface.v1_6_0.EthernetInterface",
			"Id": "1", "Name": "NIC 1", "MACAddress": b.cfg.MAC, "PermanentMACAddress": b.cfg.MAC,
			"InterfaceEnabled": true, "Status": map[string]any{"State": "Enabled", "Health": "OK"},
		}, true
	case path == biosPath:
		return b.bios(), true
	case path == settingPath:
		st := b.State()
		attrs := map[string]any{}
		for k, v := range st.BiosPending {
			attrs[k] = v
		}
		return map[string]any{
			"@odata.id": path, "@odata.type": "#Bios.v1_2_0.Bios",
			"Id": "Settings", "Name": "BIOS pending settings", "Attributes": attrs,
		}, true
	case path == root+"/Chassis":
		return collection(path, "#ChassisCollection.ChassisCollection", "Chassis Collection", chassisPath), true
	case path == chassisPath:
		return map[string]any{
			"@odata.id": path, "@odata.type": "#Chassis.v1_14_0.Chassis",
			"Id": "1", "Name": "Lab chassis " + b.cfg.Name, "ChassisType": "RackMount",
			"Manufacturer": "Slate Lab", "Model": "QEMU x86_64", "SerialNumber": b.cfg.Serial,
			"PowerState": b.powerState(ctx),
			"Status":     map[string]any{"State": "Enabled", "Health": "OK"},
			"Links": map[string]any{
				"ComputerSystems": []any{odata(sysPath)},
				"ManagedBy":       []any{odata(mgrPath)},
			},
		}, true
	case path == root+"/Managers":
		return collection(path, "#ManagerCollection.ManagerCollection", "Manager Collection", mgrPath), true
	case path == mgrPath:
		return map[string]any{
			"@odata.id": path, "@odata.type": "#Manager.v1_10_0.Manager",
			"Id": "1", "Name": "Lab BMC " + b.cfg.Name, "ManagerType": "BMC",
			"FirmwareVersion": "slate-vbmc 1.0", "Model": "Slate virtual BMC",
			"PowerState":   "On",
			"Status":       map[string]any{"State": "Enabled", "Health": "OK"},
			"VirtualMedia": odata(mgrPath + "/VirtualMedia"),
			"Links": map[string]any{
				"ManagerForServers": []any{odata(sysPath)},
				"ManagerForChassis": []any{odata(chassisPath)},
			},
			"Actions": map[string]any{"#Manager.Reset": map[string]any{
				"target":                            mgrPath + "/Actions/Manager.Reset",
				"ResetType@Redfish.AllowableValues": []string{"GracefulRestart", "ForceRestart"},
			}},
		}, true
	case path == mgrPath+"/VirtualMedia":
		return collection(path, "#VirtualMediaCollection.VirtualMediaCollection", "Virtual Media Services", cdPath), true
	case path == cdPath:
		return b.cd(), true
	case path == root+"/SessionService":
		return map[string]any{
			"@odata.id": path, "@odata.type": "#SessionService.v1_1_8.SessionService",
			"Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true,
			"SessionTimeout": 1800, "Sessions": odata(sessPath),
			"Status": map[string]any{"State": "Enabled", "Health": "OK"},
		}, true
	case path == sessPath:
		b.mu.Lock()
		var ids []string
		for _, s := range b.sessions {
			ids = append(ids, sessPath+"/"+s.ID)
		}
		b.mu.Unlock()
		return collection(path, "#SessionCollection.SessionCollection", "Session Collection", ids...), true
	case strings.HasPrefix(path, sessPath+"/"):
		id := strings.TrimPrefix(path, sessPath+"/")
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, s := range b.sessions {
			if s.ID == id {
				return sessionResource(s), true
			}
		}
		return nil, false
	case path == root+"/AccountService":
		return map[string]any{
			"@odata.id": path, "@odata.type": "#AccountService.v1_5_0.AccountService",
			"Id": "AccountService", "Name": "Account Service", "ServiceEnabled": true,
		}, true
	case path == updPath:
		return map[string]any{
			"@odata.id": path, "@odata.type": "#UpdateService.v1_11_0.UpdateService",
			"Id": "UpdateService", "Name": "Update Service", "ServiceEnabled": true,
			"MultipartHttpPushUri": pushPath,
			"FirmwareInventory":    odata(updPath + "/FirmwareInventory"),
			"Status":               map[string]any{"State": "Enabled", "Health": "OK"},
			"Actions": map[string]any{"#UpdateService.SimpleUpdate": map[string]any{
				"target": updPath + "/Actions/UpdateService.SimpleUpdate",
				"TransferProtocol@Redfish.AllowableValues": []string{"HTTP", "HTTPS"},
			}},
		}, true
	case path == updPath+"/FirmwareInventory":
		return collection(path, "#SoftwareInventoryCollection.SoftwareInventoryCollection", "Firmware Inventory", path+"/BIOS", path+"/BMC"), true
	case path == updPath+"/FirmwareInventory/BIOS":
		st := b.State()
		return map[string]any{
			"@odata.id": path, "@odata.type": "#SoftwareInventory.v1_3_0.SoftwareInventory",
			"Id": "BIOS", "Name": "System BIOS", "Version": st.BiosVersion, "Updateable": true,
			"Status": map[string]any{"State": "Enabled", "Health": "OK"},
		}, true
	case path == updPath+"/FirmwareInventory/BMC":
		return map[string]any{
			"@odata.id": path, "@odata.type": "#SoftwareInventory.v1_3_0.SoftwareInventory",
			"Id": "BMC", "Name": "BMC firmware", "Version": "slate-vbmc 1.0", "Updateable": false,
			"Status": map[string]any{"State": "Enabled", "Health": "OK"},
		}, true
	case path == root+"/TaskService":
		return map[string]any{
			"@odata.id": path, "@odata.type": "#TaskService.v1_1_4.TaskService",
			"Id": "TaskService", "Name": "Task Service", "ServiceEnabled": true,
			"Tasks": odata(taskPath),
		}, true
	case path == taskPath:
		b.mu.Lock()
		var ids []string
		for _, id := range sortedKeys(b.tasks) {
			ids = append(ids, taskPath+"/"+id)
		}
		b.mu.Unlock()
		return collection(path, "#TaskCollection.TaskCollection", "Task Collection", ids...), true
	case strings.HasPrefix(path, taskPath+"/"):
		b.mu.Lock()
		t, ok := b.tasks[strings.TrimPrefix(path, taskPath+"/")]
		b.mu.Unlock()
		if !ok {
			return nil, false
		}
		return b.taskResource(t), true
	}
	return nil, false
}

func collection(path, typ, name string, members ...string) map[string]any {
	ms := []any{}
	for _, m := range members {
		ms = append(ms, odata(m))
	}
	return map[string]any{
		"@odata.id": path, "@odata.type": typ, "Name": name,
		"Members": ms, "Members@odata.count": len(ms),
	}
}

func (b *BMC) serviceRoot() map[string]any {
	return map[string]any{
		"@odata.id":      root,
		"@odata.type":    "#ServiceRoot.v1_11_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "Slate lab BMC " + b.cfg.Name,
		"RedfishVersion": "1.11.0",
		"UUID":           b.cfg.UUID,
		"Vendor":         "Slate Lab",
		"Product":        "Slate virtual BMC",
		"Systems":        odata(root + "/Systems"),
		"Chassis":        odata(root + "/Chassis"),
		"Managers":       odata(root + "/Managers"),
		"SessionService": odata(root + "/SessionService"),
		"AccountService": odata(root + "/AccountService"),
		"UpdateService":  odata(updPath),
		"TaskService":    odata(root + "/TaskService"),
		"Links":          map[string]any{"Sessions": odata(sessPath)},
		"ProtocolFeaturesSupported": map[string]any{
			"ExpandQuery": map[string]any{"ExpandAll": false}, "SelectQuery": false,
		},
	}
}

func (b *BMC) powerState(ctx context.Context) string {
	if b.powered(ctx) {
		return "On"
	}
	return "Off"
}

func (b *BMC) system(ctx context.Context) map[string]any {
	power := b.powerState(ctx)
	st := b.State()
	mode := st.Bios["BootMode"]
	if p, ok := st.BiosPending["BootMode"]; ok {
		mode = p
	}
	overrideMode := "UEFI"
	if mode == "LegacyBios" {
		overrideMode = "Legacy"
	}
	return map[string]any{
		"@odata.id":    sysPath,
		"@odata.type":  "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id":           "1",
		"Name":         b.cfg.Name,
		"HostName":     b.cfg.Name,
		"SystemType":   "Physical",
		"Manufacturer": "Slate Lab",
		"Model":        "QEMU x86_64",
		"SerialNumber": b.cfg.Serial,
		"UUID":         b.cfg.UUID,
		"PowerState":   power,
		"BiosVersion":  st.BiosVersion,
		"Status":       map[string]any{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{
			"BootSourceOverrideEnabled":                         st.BootEnabled,
			"BootSourceOverrideEnabled@Redfish.AllowableValues": overrideModes(),
			"BootSourceOverrideTarget":                          st.BootTarget,
			"BootSourceOverrideTarget@Redfish.AllowableValues":  bootTargets(),
			"BootSourceOverrideMode":                            overrideMode,
			"BootSourceOverrideMode@Redfish.AllowableValues":    []string{"UEFI", "Legacy"},
			"UefiTargetBootSourceOverride":                      "",
			"HttpBootUri":                                       "",
			"BootOrderPropertySelection":                        "BootOrder",
		},
		"ProcessorSummary":   map[string]any{"Count": 1, "Model": "QEMU Virtual CPU", "Status": map[string]any{"State": "Enabled", "Health": "OK"}},
		"MemorySummary":      map[string]any{"TotalSystemMemoryGiB": 1, "Status": map[string]any{"State": "Enabled", "Health": "OK"}},
		"Bios":               odata(biosPath),
		"EthernetInterfaces": odata(sysPath + "/EthernetInterfaces"),
		"Links": map[string]any{
			"Chassis":   []any{odata(chassisPath)},
			"ManagedBy": []any{odata(mgrPath)},
		},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            sysPath + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": resetTypes(),
		}},
	}
}

func (b *BMC) bios() map[string]any {
	st := b.State()
	attrs := map[string]any{}
	for k, v := range st.Bios {
		attrs[k] = v
	}
	return map[string]any{
		"@odata.id":         biosPath,
		"@odata.type":       "#Bios.v1_2_0.Bios",
		"Id":                "Bios",
		"Name":              "BIOS Configuration Current Settings",
		"AttributeRegistry": "SlateLabBiosAttributeRegistry.v1_0_0",
		"Attributes":        attrs,
		"@Redfish.Settings": map[string]any{
			"@odata.type":         "#Settings.v1_3_5.Settings",
			"SettingsObject":      odata(settingPath),
			"SupportedApplyTimes": []string{"OnReset"},
		},
		"Actions": map[string]any{"#Bios.ResetBios": map[string]any{
			"target": biosPath + "/Actions/Bios.ResetBios",
		}},
	}
}

func (b *BMC) cd() map[string]any {
	st := b.State()
	image := any(nil)
	name := any(nil)
	if st.Media.Inserted {
		image = st.Media.Image
		if i := strings.LastIndex(st.Media.Image, "/"); i >= 0 {
			name = st.Media.Image[i+1:]
		}
	}
	connected := "NotConnected"
	if st.Media.Inserted {
		connected = "URI"
	}
	return map[string]any{
		"@odata.id":      cdPath,
		"@odata.type":    "#VirtualMedia.v1_3_0.VirtualMedia",
		"Id":             "CD1",
		"Name":           "Virtual CD",
		"MediaTypes":     []string{"CD", "DVD"},
		"Image":          image,
		"ImageName":      name,
		"Inserted":       st.Media.Inserted,
		"WriteProtected": true,
		"ConnectedVia":   connected,
		"TransferProtocolType@Redfish.AllowableValues": []string{"HTTP", "HTTPS"},
		"Actions": map[string]any{
			"#VirtualMedia.InsertMedia": map[string]any{"target": cdPath + "/Actions/VirtualMedia.InsertMedia"},
			"#VirtualMedia.EjectMedia":  map[string]any{"target": cdPath + "/Actions/VirtualMedia.EjectMedia"},
		},
	}
}
