package reclaim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// GUIDs used as ids in the tests.
const (
	app1 = "0f8fad5b-d9cb-469f-a165-70867728950e"
	app2 = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	dev1 = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	dev2 = "b3c4d5e6-f7a8-4b9c-8d0e-1f2a3b4c5d6e"
	dev3 = "c56a4180-65aa-42ec-a945-5fd21dec0538"
)

// writeInput writes content to input.csv in a new temporary directory and returns its path.
func writeInput(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "input.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// readInput opens path and reads every row. It returns the rows read before the first error, and
// that error, which comes from OpenInput or Next; io.EOF is not an error.
func readInput(t testing.TB, path string, defaultNotify bool) ([]Row, error) {
	t.Helper()
	in, err := OpenInput(path, defaultNotify)
	if err != nil {
		return nil, err
	}
	defer in.Close()

	var rows []Row
	for {
		row, err := in.Next()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
	}
}

// readInputOneByte reads content as readInput reads a file, but through a reader that returns one
// byte per call, so that each byte reaches the reader's checks in a read of its own. path is used only
// in messages.
func readInputOneByte(t testing.TB, path string, content []byte) ([]Row, error) {
	t.Helper()
	in, err := newInput(path, newCountingReader(iotest.OneByteReader(bytes.NewReader(content))), false)
	if err != nil {
		return nil, err
	}

	var rows []Row
	for {
		row, err := in.Next()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
	}
}

// validRow is a row that can be sent, with notify false.
func validRow(index, line int, appID, deviceID string) Row {
	return Row{Index: index, Line: line, AppID: appID, DeviceID: deviceID}
}

// utf16LE encodes s as UTF-16 little endian with a byte-order mark, as Excel's "Unicode Text".
func utf16LE(s string) string {
	var b bytes.Buffer
	b.Write([]byte{0xFF, 0xFE})
	for _, unit := range utf16.Encode([]rune(s)) {
		b.WriteByte(byte(unit))
		b.WriteByte(byte(unit >> 8))
	}
	return b.String()
}

// utf16BE encodes s as UTF-16 big endian with a byte-order mark.
func utf16BE(s string) string {
	var b bytes.Buffer
	b.Write([]byte{0xFE, 0xFF})
	for _, unit := range utf16.Encode([]rune(s)) {
		b.WriteByte(byte(unit >> 8))
		b.WriteByte(byte(unit))
	}
	return b.String()
}

func TestOpenInputHeaderAliases(t *testing.T) {
	tests := []struct {
		header                     string
		wantApp, wantDevice        int
		wantAppName, wantNotifyCol string
		wantNotify                 int
	}{
		{header: "appId,deviceId", wantApp: 1, wantDevice: 2, wantAppName: "appId"},
		{header: "mobileAppId,managedDeviceId", wantApp: 1, wantDevice: 2, wantAppName: "mobileAppId"},
		{header: "applicationId,intune device id", wantApp: 1, wantDevice: 2, wantAppName: "applicationId"},
		{header: "app id,device id", wantApp: 1, wantDevice: 2, wantAppName: "app id"},
		{header: "APP_ID,DEVICE-ID", wantApp: 1, wantDevice: 2, wantAppName: "APP_ID"},
		{header: " App Id , Device Id ", wantApp: 1, wantDevice: 2, wantAppName: " App Id "},
		{header: "Mobile App ID,Managed Device ID", wantApp: 1, wantDevice: 2, wantAppName: "Mobile App ID"},
		{header: "Application_ID,Intune_Device_ID", wantApp: 1, wantDevice: 2, wantAppName: "Application_ID"},
		{header: "deviceid,APPID", wantApp: 2, wantDevice: 1, wantAppName: "APPID"},
		{header: "x,appId,y,deviceId,z", wantApp: 2, wantDevice: 4, wantAppName: "appId"},
		{header: "appId,deviceId,notify", wantApp: 1, wantDevice: 2, wantAppName: "appId", wantNotify: 3, wantNotifyCol: "notify"},
		{header: "appId,deviceId,notifyManagedDevices", wantApp: 1, wantDevice: 2, wantAppName: "appId", wantNotify: 3, wantNotifyCol: "notifyManagedDevices"},
		{header: "Notify Managed Devices,appId,deviceId", wantApp: 2, wantDevice: 3, wantAppName: "appId", wantNotify: 1, wantNotifyCol: "Notify Managed Devices"},
		{header: "NOTIFY,app-id,device_id", wantApp: 2, wantDevice: 3, wantAppName: "app-id", wantNotify: 1, wantNotifyCol: "NOTIFY"},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			cells := make([]string, strings.Count(tt.header, ",")+1)
			cells[tt.wantApp-1] = app1
			cells[tt.wantDevice-1] = dev1
			if tt.wantNotify > 0 {
				cells[tt.wantNotify-1] = "yes"
			}
			path := writeInput(t, tt.header+"\n"+strings.Join(cells, ",")+"\n")

			in, err := OpenInput(path, false)
			if err != nil {
				t.Fatalf("OpenInput: %v", err)
			}
			defer in.Close()
			columns := in.Columns()
			if columns.AppID.Number != tt.wantApp || columns.AppID.Name != tt.wantAppName {
				t.Errorf("Columns().AppID = %+v, want number %d, name %q", columns.AppID, tt.wantApp, tt.wantAppName)
			}
			if columns.DeviceID.Number != tt.wantDevice {
				t.Errorf("Columns().DeviceID.Number = %d, want %d", columns.DeviceID.Number, tt.wantDevice)
			}
			if columns.Notify.Number != tt.wantNotify || columns.Notify.Name != tt.wantNotifyCol {
				t.Errorf("Columns().Notify = %+v, want number %d, name %q", columns.Notify, tt.wantNotify, tt.wantNotifyCol)
			}

			row, err := in.Next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			want := Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1, Notify: tt.wantNotify > 0}
			if row != want {
				t.Errorf("Next() = %+v, want %+v", row, want)
			}
		})
	}
}

func TestOpenInputIntuneExports(t *testing.T) {
	tests := []struct {
		name                string
		content             string
		wantApp, wantDevice InputColumn
		wantRows            []Row
	}{
		{
			name: "all devices export with app id added",
			content: "Device name,Device ID,Microsoft Entra Device ID,Serial number,Primary user UPN,App ID\n" +
				"iPad-01," + dev1 + "," + dev2 + ",DMPX1,ann@contoso.com," + app1 + "\n",
			wantApp:    InputColumn{Number: 6, Name: "App ID"},
			wantDevice: InputColumn{Number: 2, Name: "Device ID"},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name: "older all devices export with Azure AD Device ID",
			content: "Device name,Azure AD Device ID,Device ID,appId\n" +
				"iPad-01," + dev2 + "," + dev1 + "," + app1 + "\n",
			wantApp:    InputColumn{Number: 4, Name: "appId"},
			wantDevice: InputColumn{Number: 3, Name: "Device ID"},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name: "DeviceInstallStatusByApp report",
			content: "DeviceId,DeviceName,UserPrincipalName,ApplicationId,AppInstallState,AppInstallState_loc,InstallStateDetail_loc\n" +
				dev1 + ",iPad-01,ann@contoso.com," + app1 + ",2,Installed,Installé\n" +
				dev2 + ",iPad-02,bob@contoso.com," + app1 + ",5,Failed,Échec\n",
			wantApp:    InputColumn{Number: 4, Name: "ApplicationId"},
			wantDevice: InputColumn{Number: 1, Name: "DeviceId"},
			wantRows:   []Row{validRow(1, 2, app1, dev1), validRow(2, 3, app1, dev2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, tt.content)
			in, err := OpenInput(path, false)
			if err != nil {
				t.Fatalf("OpenInput: %v", err)
			}
			columns := in.Columns()
			in.Close()
			if columns.AppID != tt.wantApp {
				t.Errorf("Columns().AppID = %+v, want %+v", columns.AppID, tt.wantApp)
			}
			if columns.DeviceID != tt.wantDevice {
				t.Errorf("Columns().DeviceID = %+v, want %+v", columns.DeviceID, tt.wantDevice)
			}

			rows, err := readInput(t, path, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows, tt.wantRows) {
				t.Errorf("rows = %+v, want %+v", rows, tt.wantRows)
			}
		})
	}
}

func TestInputFormats(t *testing.T) {
	tests := []struct {
		name       string
		content    string
		wantFormat InputFormat
		wantRows   []Row
	}{
		{
			name:       "comma",
			content:    "appId,deviceId\n" + app1 + "," + dev1 + "\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "no final newline",
			content:    "appId,deviceId\n" + app1 + "," + dev1,
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "sep line",
			content:    "sep=;\nappId;deviceId;name\n" + app1 + ";" + dev1 + ";a,b\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ';', SepLine: true},
			wantRows:   []Row{validRow(1, 3, app1, dev1)},
		},
		{
			name:       "sep line overrides detection",
			content:    "SEP=|\r\nappId|deviceId|a,b,c\r\n" + app1 + "|" + dev1 + "|x,y,z\r\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: '|', SepLine: true},
			wantRows:   []Row{validRow(1, 3, app1, dev1)},
		},
		{
			name:       "sep line with tab",
			content:    "sep=\t\nappId\tdeviceId\n" + app1 + "\t" + dev1 + "\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: '\t', SepLine: true},
			wantRows:   []Row{validRow(1, 3, app1, dev1)},
		},
		{
			name:       "semicolon detected",
			content:    "appId;deviceId;Device name\n" + app1 + ";" + dev1 + ";iPad, Ann\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ';'},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "tab detected",
			content:    "appId\tdeviceId\tname\n" + app1 + "\t" + dev1 + "\tx;y\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: '\t'},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "delimiters inside quotes are not counted",
			content:    "\"appId\",\"deviceId\",\"a;b;c;d\"\n" + app1 + "," + dev1 + ",x\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "tie goes to comma",
			content:    "appId,deviceId,x;y;z\n" + app1 + "," + dev1 + ",a;b;c\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "UTF-8 byte-order mark",
			content:    "\uFEFFappId,deviceId\n" + app1 + "," + dev1 + "\n",
			wantFormat: InputFormat{Encoding: "UTF-8 with BOM", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "byte-order mark and sep line",
			content:    "\uFEFFsep=;\r\nappId;deviceId\r\n" + app1 + ";" + dev1 + "\r\n",
			wantFormat: InputFormat{Encoding: "UTF-8 with BOM", Delimiter: ';', SepLine: true},
			wantRows:   []Row{validRow(1, 3, app1, dev1)},
		},
		{
			name:       "UTF-16LE unicode text",
			content:    utf16LE("Device name\tappId\tdeviceId\r\nÉcran ☃\t" + app1 + "\t" + dev1 + "\r\n\r\niPad\t" + app2 + "\t" + dev2 + "\r\n"),
			wantFormat: InputFormat{Encoding: "UTF-16LE", Delimiter: '\t'},
			wantRows:   []Row{validRow(1, 2, app1, dev1), validRow(2, 4, app2, dev2)},
		},
		{
			name:       "UTF-16BE",
			content:    utf16BE("appId;deviceId\n" + app1 + ";" + dev1 + "\n"),
			wantFormat: InputFormat{Encoding: "UTF-16BE", Delimiter: ';'},
			wantRows:   []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:       "CRLF",
			content:    "appId,deviceId\r\n" + app1 + "," + dev1 + "\r\n" + app1 + "," + dev2 + "\r\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1), validRow(2, 3, app1, dev2)},
		},
		{
			name: "quoted fields with delimiters, quotes and newlines",
			content: "appId,Device name,deviceId\n" +
				"\"" + app1 + "\",\"Ann's \"\"iPad\"\", room 4\",\"" + dev1 + "\"\n" +
				app1 + ",\"line one\r\nline two,\nline three\"," + dev2 + "\n" +
				app1 + ",plain," + dev3 + "\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1), validRow(2, 3, app1, dev2), validRow(3, 6, app1, dev3)},
		},
		{
			name: "blank lines and empty records are skipped",
			content: "\n\n;;;\nappId;deviceId;x\n\n" + app1 + ";" + dev1 + ";a\n;;\n  ;  ; \n;;;\n\r\n" +
				app1 + ";" + dev2 + ";b\n;;;\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ';'},
			wantRows:   []Row{validRow(1, 6, app1, dev1), validRow(2, 11, app1, dev2)},
		},
		{
			name:       "blank lines before the header with sep line",
			content:    "sep=,\n\n , \nappId,deviceId\n" + app1 + "," + dev1 + "\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ',', SepLine: true},
			wantRows:   []Row{validRow(1, 5, app1, dev1)},
		},
		{
			name: "invalid UTF-8 in an ignored column",
			content: "appId,Device name,deviceId,notes\n" +
				app1 + ",iPad \xff\xfe\xc3," + dev1 + ",\x80\x81\n" +
				app1 + ",\"quoted \xe9t\xe9\"," + dev2 + ",ok\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 2, app1, dev1), validRow(2, 3, app1, dev2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, tt.content)
			in, err := OpenInput(path, false)
			if err != nil {
				t.Fatalf("OpenInput: %v", err)
			}
			format := in.Format()
			in.Close()
			if format != tt.wantFormat {
				t.Errorf("Format() = %+v, want %+v", format, tt.wantFormat)
			}

			rows, err := readInput(t, path, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows, tt.wantRows) {
				t.Errorf("rows = %+v\nwant   %+v", rows, tt.wantRows)
			}
		})
	}
}

func TestInputIDNormalisation(t *testing.T) {
	tests := []struct {
		cell string
		want string
	}{
		{cell: app1, want: app1},
		{cell: strings.ToUpper(app1), want: app1},
		{cell: "{" + app1 + "}", want: app1},
		{cell: "{" + strings.ToUpper(app1) + "}", want: app1},
		{cell: "  " + app1 + "\t", want: app1},
		{cell: " {0F8FAD5B-d9cb-469F-A165-70867728950E} ", want: app1},
	}
	for _, tt := range tests {
		t.Run(tt.cell, func(t *testing.T) {
			path := writeInput(t, "appId,deviceId\n\""+tt.cell+"\",\""+tt.cell+"\"\n")
			rows, err := readInput(t, path, false)
			if err != nil {
				t.Fatal(err)
			}
			want := []Row{validRow(1, 2, tt.want, tt.want)}
			if !slices.Equal(rows, want) {
				t.Errorf("rows = %+v, want %+v", rows, want)
			}
		})
	}
}

func TestInputNotify(t *testing.T) {
	tests := []struct {
		cell          string
		defaultNotify bool
		want          bool
		wantInvalid   string
	}{
		{cell: "true", want: true},
		{cell: "TRUE", want: true},
		{cell: " Yes ", want: true},
		{cell: "1", want: true},
		{cell: "false", defaultNotify: true, want: false},
		{cell: "No", defaultNotify: true, want: false},
		{cell: "0", defaultNotify: true, want: false},
		{cell: "", defaultNotify: true, want: true},
		{cell: "", defaultNotify: false, want: false},
		{cell: "   ", defaultNotify: true, want: true},
		{cell: "maybe", defaultNotify: true, want: true,
			wantInvalid: `notify value "maybe" is not one of true, false, yes, no, 1, 0`},
		{cell: "2", want: false,
			wantInvalid: `notify value "2" is not one of true, false, yes, no, 1, 0`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q default %v", tt.cell, tt.defaultNotify), func(t *testing.T) {
			path := writeInput(t, "appId,deviceId,notify\n"+app1+","+dev1+","+tt.cell+"\n")
			rows, err := readInput(t, path, tt.defaultNotify)
			if err != nil {
				t.Fatal(err)
			}
			want := []Row{{Index: 1, Line: 2, AppID: app1, DeviceID: dev1, Notify: tt.want, Invalid: tt.wantInvalid}}
			if !slices.Equal(rows, want) {
				t.Errorf("rows = %+v, want %+v", rows, want)
			}
		})
	}
}

func TestInputNotifyDefaultWithoutColumn(t *testing.T) {
	for _, defaultNotify := range []bool{false, true} {
		path := writeInput(t, "appId,deviceId\n"+app1+","+dev1+"\n")
		rows, err := readInput(t, path, defaultNotify)
		if err != nil {
			t.Fatal(err)
		}
		want := []Row{{Index: 1, Line: 2, AppID: app1, DeviceID: dev1, Notify: defaultNotify}}
		if !slices.Equal(rows, want) {
			t.Errorf("default %v: rows = %+v, want %+v", defaultNotify, rows, want)
		}
	}
}

func TestInputInvalidRows(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name string
		line string // one data line after the header "appId,deviceId,name"
		want Row
	}{
		{
			name: "too many fields",
			line: app1 + "," + dev1 + ",iPad, Ann",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1,
				Invalid: `has 4 fields, but the header has 3; put a value that contains ',' in quotes`},
		},
		{
			name: "too few fields",
			line: app1 + "," + dev1,
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1, Invalid: "has 2 fields, but the header has 3"},
		},
		{
			name: "too few fields for the device id",
			line: app1,
			want: Row{Index: 1, Line: 2, AppID: app1, Invalid: "has 1 field, but the header has 3"},
		},
		{
			name: "bare quote",
			line: app1 + "," + dev1 + ",Ann's 10\" iPad",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1,
				Invalid: `a value that does not start with a quote contains one; put the value in quotes and write the quote as ""`},
		},
		{
			name: "text after a closing quote",
			line: app1 + "," + dev1 + ",\"Ann\"s iPad\"",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1,
				Invalid: `a quote inside a quoted value is not written as "", or a closing quote is followed by more text`},
		},
		{
			name: "empty app id",
			line: "," + dev1 + ",x",
			want: Row{Index: 1, Line: 2, DeviceID: dev1, Invalid: "app id is empty"},
		},
		{
			name: "blank device id",
			line: app1 + ",  ,x",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: "  ", Invalid: "device id is empty"},
		},
		{
			name: "app id not a GUID",
			line: "Contoso App," + dev1 + ",x",
			want: Row{Index: 1, Line: 2, AppID: "Contoso App", DeviceID: dev1,
				Invalid: `app id "Contoso App" is not a GUID (8-4-4-4-12 hex digits)`},
		},
		{
			name: "GUID without dashes",
			line: app1 + ",7c9e6679742540de944be07fc1f90ae7,x",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: "7c9e6679742540de944be07fc1f90ae7",
				Invalid: `device id "7c9e6679742540de944be07fc1f90ae7" is not a GUID (8-4-4-4-12 hex digits)`},
		},
		{
			name: "GUID with a non-hex digit",
			line: app1 + ",7c9e6679-7425-40de-944b-e07fc1f90aeg,x",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: "7c9e6679-7425-40de-944b-e07fc1f90aeg",
				Invalid: `device id "7c9e6679-7425-40de-944b-e07fc1f90aeg" is not a GUID (8-4-4-4-12 hex digits)`},
		},
		{
			name: "GUID with one brace",
			line: "{" + app1 + "," + dev1 + ",x",
			want: Row{Index: 1, Line: 2, AppID: "{" + app1, DeviceID: dev1,
				Invalid: `app id "{` + app1 + `" is not a GUID (8-4-4-4-12 hex digits)`},
		},
		{
			name: "long id is shortened",
			line: app1 + "," + long + ",x",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: long,
				Invalid: `device id "` + long[:60] + `"... (100 bytes) is not a GUID (8-4-4-4-12 hex digits)`},
		},
		{
			name: "invalid UTF-8 in an id",
			line: "\xff\xfeid\x00," + dev1 + ",x",
			want: Row{Index: 1, Line: 2, AppID: "\uFFFD\uFFFDid ", DeviceID: dev1,
				Invalid: `app id "\xff\xfeid\x00" is not a GUID (8-4-4-4-12 hex digits)`},
		},
		{
			name: "both ids invalid",
			line: "a,b,x",
			want: Row{Index: 1, Line: 2, AppID: "a", DeviceID: "b",
				Invalid: `app id "a" is not a GUID (8-4-4-4-12 hex digits); device id "b" is not a GUID (8-4-4-4-12 hex digits)`},
		},
		{
			name: "id with a line break",
			line: app1 + ",\"iPad\nx\",x",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: "iPad x",
				Invalid: `device id "iPad\nx" is not a GUID (8-4-4-4-12 hex digits) (the record spans lines 2-3, so a quote may be unbalanced)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, "appId,deviceId,name\n"+tt.line+"\n"+app2+","+dev2+",next\n")
			rows, err := readInput(t, path, false)
			if err != nil {
				t.Fatal(err)
			}
			next := validRow(2, tt.want.Line+1+strings.Count(tt.line, "\n"), app2, dev2)
			want := []Row{tt.want, next}
			if !slices.Equal(rows, want) {
				t.Errorf("rows = %+v\nwant   %+v", rows, want)
			}
			for _, row := range rows {
				if strings.ContainsAny(row.Invalid, "\r\n") || !utf8.ValidString(row.Invalid) {
					t.Errorf("row %d: Invalid = %q, want valid UTF-8 on one line", row.Index, row.Invalid)
				}
			}
		})
	}
}

func TestInputStrayQuoteOnLastLine(t *testing.T) {
	// A quote error on the last line that leaves no quote open is an invalid row, not an unclosed quote.
	const reason = `a quote inside a quoted value is not written as "", or a closing quote is followed by more text`
	for _, last := range []string{
		app1 + `,"x"y` + "\n",
		app1 + `,"x"y`,
		app1 + `,"x"y` + "\r\n",
		app1 + `,"x"y` + "\r",
		app1 + `,"x"y"` + "\n",
		app1 + `,"x""y"z`,
	} {
		t.Run(last, func(t *testing.T) {
			rows, err := readInput(t, writeInput(t, "appId,deviceId\n"+last), false)
			if err != nil {
				t.Fatal(err)
			}
			want := []Row{{Index: 1, Line: 2, AppID: app1, Invalid: reason}}
			if !slices.Equal(rows, want) {
				t.Errorf("rows = %+v, want %+v", rows, want)
			}
		})
	}
}

func TestInputRowNumbering(t *testing.T) {
	content := "sep=;\r\n" + // line 1
		"\r\n" + // 2
		"appId;deviceId;note\r\n" + // 3
		app1 + ";" + dev1 + ";\"two\r\nlines\"\r\n" + // 4-5
		";;\r\n" + // 6
		"\r\n" + // 7
		app1 + ";" + dev2 + ";x\r\n" + // 8
		"bad;" + dev3 + ";x\r\n" + // 9
		"  ;\t;  \r\n" + // 10
		app2 + ";" + dev1 + ";\"a\n\nb\"\r\n" + // 11-13
		app2 + ";" + dev2 + ";last" // 14
	want := []Row{
		validRow(1, 4, app1, dev1),
		validRow(2, 8, app1, dev2),
		{Index: 3, Line: 9, AppID: "bad", DeviceID: dev3, Invalid: `app id "bad" is not a GUID (8-4-4-4-12 hex digits)`},
		validRow(4, 11, app2, dev1),
		validRow(5, 14, app2, dev2),
	}
	rows, err := readInput(t, writeInput(t, content), false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows, want) {
		t.Errorf("rows = %+v\nwant   %+v", rows, want)
	}
}

func TestInputFatal(t *testing.T) {
	const header = "appId,deviceId\n"
	row := app1 + "," + dev1 + "\n"
	tests := []struct {
		name        string
		content     string
		wantRows    int // rows Next returns before the error
		wantLine    int
		wantProblem string
		wantFix     string
	}{
		{name: "empty file", content: "",
			wantProblem: "the file is empty", wantFix: "header such as appId,deviceId"},
		{name: "only blank lines", content: "\n\r\n  \n;;;\n,,\n",
			wantProblem: "no header row: the file contains only blank lines", wantFix: "add a header row"},
		{name: "only a byte-order mark", content: "\uFEFF",
			wantProblem: "no header row", wantFix: "add a header row"},
		{name: "only a sep line", content: "sep=;\r\n;;\r\n",
			wantProblem: "no header row", wantFix: "add a header row"},
		{name: "only empty quoted cells", content: "\"\",\"\"\n",
			wantProblem: "no header row", wantFix: "add a header row"},
		{name: "sep line without delimiter", content: "sep=\nappId,deviceId\n",
			wantLine: 1, wantProblem: `the first line "sep=\n" starts like an Excel sep= line but does not name one delimiter`,
			wantFix: "write it as sep=;"},
		{name: "sep line with two characters", content: "sep=;;\nappId;deviceId\n",
			wantLine: 1, wantProblem: "does not name one delimiter", wantFix: "write it as sep=;"},
		{name: "sep line with a quote", content: "sep=\"\nappId,deviceId\n",
			wantLine: 1, wantProblem: "does not name one delimiter", wantFix: "write it as sep=;"},
		{name: "no app id column", content: "Device ID,Device name\n" + dev1 + ",x\n",
			wantProblem: `no app id column: the header has "Device ID", "Device name"`, wantFix: "name the column of app ids appId"},
		{name: "no device id column", content: "appId,Device name,Serial number\n",
			wantProblem: `no device id column: the header has "appId", "Device name", "Serial number"`,
			wantFix:     "name the column of Intune managed device ids deviceId"},
		{name: "header in one cell", content: "appId|deviceId\n",
			wantProblem: `no app id column: the header has "appId|deviceId"`,
			wantFix:     `the header was read as one cell with the delimiter ',', so if the file uses another delimiter, add a first line "sep=" followed by it`},
		{name: "long header is listed in part", content: "a,b,c,d,e,f,g,h,i,j,k,l,m,n,deviceId\n",
			wantProblem: `no app id column: the header has "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l" and 3 more`,
			wantFix:     "name the column of app ids"},
		{name: "two app id columns", content: "appId,deviceId,Application ID\n",
			wantProblem: `two app id columns: "appId" (column 1) and "Application ID" (column 3)`, wantFix: "delete or rename one of them"},
		{name: "two device id columns", content: "Device ID,appId,Intune Device ID\n",
			wantProblem: `two device id columns: "Device ID" (column 1) and "Intune Device ID" (column 3)`, wantFix: "delete or rename one of them"},
		{name: "two notify columns", content: "appId,deviceId,notify,Notify Managed Devices\n",
			wantProblem: `two notify columns: "notify" (column 3) and "Notify Managed Devices" (column 4)`, wantFix: "delete or rename one of them"},
		{name: "UTF-16 without byte-order mark", content: "a\x00p\x00p\x00I\x00d\x00,\x00d\x00e\x00v\x00\n\x00",
			wantProblem: "the header contains NUL bytes, so the file is probably UTF-16 without a byte-order mark",
			wantFix:     `save it from Excel as "CSV UTF-8"`},
		{name: "classic Mac line endings", content: "appId,deviceId\r" + app1 + "," + dev1 + "\r",
			wantLine:    1,
			wantProblem: "line 1 has a carriage return without a line feed (a classic Mac OS line ending) outside a quoted value",
			wantFix:     `save the file with CR LF or LF line endings, for example from Excel as "CSV UTF-8"`},
		{name: "stray quote in the header", content: "appId,\"device\"Id\n" + row,
			wantLine: 1, wantProblem: "the header row has a stray quote", wantFix: `write the quote as ""`},
		{name: "unclosed quote in the header", content: "appId,\"deviceId\n" + row,
			wantLine: 1, wantProblem: "a quoted value in the record that starts on line 1 is never closed", wantFix: "close the quote"},
		{name: "unclosed quote in the middle", content: header + row + app1 + ",\"" + dev2 + "\n" + row + row,
			wantRows: 1, wantLine: 3, wantProblem: "a quoted value in the record that starts on line 3 is never closed, so every later line would be read into that value",
			wantFix: `close the quote, or write a quote inside a quoted value as ""`},
		{name: "unclosed quote on the last line", content: header + row + app1 + ",\"" + dev2 + "\n",
			wantRows: 1, wantLine: 3, wantProblem: "a quoted value in the record that starts on line 3 is never closed", wantFix: "close the quote"},
		{name: "unclosed quote on the last line without newline", content: header + row + app1 + ",\"" + dev2,
			wantRows: 1, wantLine: 3, wantProblem: "a quoted value in the record that starts on line 3 is never closed", wantFix: "close the quote"},
		{name: "unclosed quote with CRLF", content: "appId,deviceId\r\n" + app1 + ",\"" + dev2 + "\r\n",
			wantLine: 2, wantProblem: "a quoted value in the record that starts on line 2 is never closed", wantFix: "close the quote"},
		{name: "unclosed quote before a final CR", content: header + app1 + ",\"" + dev2 + "\r",
			wantLine: 2, wantProblem: "a quoted value in the record that starts on line 2 is never closed", wantFix: "close the quote"},
		{name: "unclosed quote before blank lines", content: header + app1 + ",\"" + dev2 + "\n\n\n",
			wantLine: 2, wantProblem: "a quoted value in the record that starts on line 2 is never closed", wantFix: "close the quote"},
		{name: "escaped quote at the end is not a closing quote", content: header + app1 + ",\"x\"\"\n",
			wantLine: 2, wantProblem: "a quoted value in the record that starts on line 2 is never closed", wantFix: "close the quote"},
		{name: "unclosed quote after a sep line and blank lines", content: "sep=,\n\n" + header + row + "\n" + app1 + ",\"" + dev2 + "\n" + row,
			wantRows: 1, wantLine: 6, wantProblem: "a quoted value in the record that starts on line 6 is never closed", wantFix: "close the quote"},
		{name: "unclosed quote in UTF-16", content: utf16LE("appId\tdeviceId\r\n" + app1 + "\t\"" + dev1 + "\r\n" + app1 + "\t" + dev2 + "\r\n"),
			wantLine: 2, wantProblem: "a quoted value in the record that starts on line 2 is never closed", wantFix: "close the quote"},
		{name: "stray opening quote ended by a later quote", content: header + app1 + ",\"" + dev1 + "\n" + row + row + app1 + ",\"" + dev2 + "\"x\n" + row,
			wantLine: 2, wantProblem: "the record that starts on line 2 runs to line 5 inside a quoted value and has a stray quote on line 5, so lines 2-5 were probably read as one value",
			wantFix: "close the quote"},
		{name: "bare quote after a multi-line value", content: "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"a\nb\",x\"y\n" + row,
			wantLine: 2, wantProblem: "the record that starts on line 2 runs to line 3 inside a quoted value", wantFix: "close the quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFatal(t, writeInput(t, tt.content), tt.wantRows, tt.wantLine, tt.wantProblem, tt.wantFix)
		})
	}
}

// checkFatal reads the file at path with OpenInput and Next and checks that wantRows rows come before
// an *InputError with the given line, problem and fix, and that ScanInput stops with the same error.
func checkFatal(t *testing.T, path string, wantRows, wantLine int, wantProblem, wantFix string) {
	t.Helper()
	rows, readErr := readInput(t, path, false)
	if len(rows) != wantRows {
		t.Errorf("rows before the error = %d, want %d", len(rows), wantRows)
	}
	var inputErr *InputError
	if !errors.As(readErr, &inputErr) {
		t.Fatalf("error = %v, want an *InputError", readErr)
	}
	checkInputError(t, inputErr, path, wantLine, wantProblem, wantFix)

	// The checks below encoding/csv must find the same problem wherever the reads of the file end.
	if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() && info.Size() <= 64<<10 {
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		oneByteRows, oneByteErr := readInputOneByte(t, path, content)
		if len(oneByteRows) != len(rows) || fmt.Sprint(oneByteErr) != readErr.Error() {
			t.Errorf("read one byte at a time: %d rows and %v, want %d rows and %v", len(oneByteRows), oneByteErr, len(rows), readErr)
		}
	}

	// ScanInput reads through the same code, so it must stop with the same error.
	_, scanErr := ScanInput(path)
	if scanErr == nil || scanErr.Error() != readErr.Error() {
		t.Errorf("ScanInput error = %v\nwant the Next error %v", scanErr, readErr)
	}
}

func checkInputError(t *testing.T, err *InputError, wantPath string, wantLine int, wantProblem, wantFix string) {
	t.Helper()
	if err.Path != wantPath {
		t.Errorf("Path = %q, want %q", err.Path, wantPath)
	}
	if err.Line != wantLine {
		t.Errorf("Line = %d, want %d", err.Line, wantLine)
	}
	if !strings.Contains(err.Problem, wantProblem) {
		t.Errorf("Problem = %q, want it to contain %q", err.Problem, wantProblem)
	}
	if !strings.Contains(err.Fix, wantFix) {
		t.Errorf("Fix = %q, want it to contain %q", err.Fix, wantFix)
	}
	wantPrefix := wantPath + ": "
	if wantLine > 0 {
		wantPrefix = fmt.Sprintf("%s:%d: ", wantPath, wantLine)
	}
	if msg := err.Error(); msg != wantPrefix+err.Problem+"; "+err.Fix {
		t.Errorf("Error() = %q, want %q", msg, wantPrefix+err.Problem+"; "+err.Fix)
	}
	if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
		t.Errorf("Error() = %q, want valid UTF-8 on one line", msg)
	}
}

func TestInputFatalEntraDeviceID(t *testing.T) {
	for _, column := range []string{
		"Azure AD Device ID",
		"Microsoft Entra Device ID",
		"Entra Device ID",
		"AAD Device ID",
		"azureADDeviceId",
		"entra_device_id",
		"Entra ID Device ID",
	} {
		t.Run(column, func(t *testing.T) {
			path := writeInput(t, "Device name,"+column+",appId\niPad,"+dev1+","+app1+"\n")
			_, err := OpenInput(path, false)
			var inputErr *InputError
			if !errors.As(err, &inputErr) {
				t.Fatalf("OpenInput error = %v, want an *InputError", err)
			}
			checkInputError(t, inputErr, path, 0,
				fmt.Sprintf("no device id column: the header has %q, which is the Entra device id, not the Intune managed device id", column),
				`export "Device ID" from the Intune admin center (Devices > All devices > Export) and use that column`)
		})
	}
}

func TestOpenInputFileErrors(t *testing.T) {
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.csv")
	_, err := OpenInput(missing, false)
	var inputErr *InputError
	if !errors.As(err, &inputErr) {
		t.Fatalf("OpenInput(missing) error = %v, want an *InputError", err)
	}
	checkInputError(t, inputErr, missing, 0, "file not found", "check the path")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenInput(missing) error = %v, want it to wrap fs.ErrNotExist", err)
	}

	_, err = OpenInput(dir, false)
	if !errors.As(err, &inputErr) {
		t.Fatalf("OpenInput(directory) error = %v, want an *InputError", err)
	}
	checkInputError(t, inputErr, dir, 0, "is a directory, not a file", "give the path of the CSV file")

	_, err = ScanInput(missing)
	if !errors.As(err, &inputErr) || inputErr.Problem != "file not found" {
		t.Errorf("ScanInput(missing) error = %v, want file not found", err)
	}
}

func TestOpenInputPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 || runtime.GOOS == "windows" {
		t.Skip("root and Windows ignore the file mode")
	}
	path := writeInput(t, "appId,deviceId\n")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := OpenInput(path, false)
	var inputErr *InputError
	if !errors.As(err, &inputErr) {
		t.Fatalf("OpenInput error = %v, want an *InputError", err)
	}
	checkInputError(t, inputErr, path, 0, "permission denied", "make the file readable")
}

func TestInputNextAfterEnd(t *testing.T) {
	path := writeInput(t, "appId,deviceId\n"+app1+","+dev1+"\n"+app1+",\"x\n")
	in, err := OpenInput(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.Next(); err != nil {
		t.Fatalf("first Next: %v", err)
	}
	_, first := in.Next()
	_, second := in.Next()
	if first == nil || second != first {
		t.Errorf("Next after the fatal error = %v, want the same error %v", second, first)
	}

	path = writeInput(t, "appId,deviceId\n")
	in, err = OpenInput(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for i := range 2 {
		if _, err := in.Next(); err != io.EOF {
			t.Errorf("Next call %d on a file without rows = %v, want io.EOF", i+1, err)
		}
	}
}

func TestInputOffsetAndSize(t *testing.T) {
	content := "appId,deviceId\n" + strings.Repeat(app1+","+dev1+"\n", 5000)
	path := writeInput(t, content)
	in, err := OpenInput(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if got, want := in.Size(), int64(len(content)); got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
	if got := in.Offset(); got <= 0 || got >= int64(len(content)) {
		t.Errorf("Offset() after the header = %d, want between 0 and %d", got, len(content))
	}

	previous := int64(0)
	for {
		_, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if offset := in.Offset(); offset < previous {
			t.Fatalf("Offset() = %d after %d, want it never to decrease", offset, previous)
		}
		previous = in.Offset()
	}
	if got, want := in.Offset(), int64(len(content)); got != want {
		t.Errorf("Offset() at the end = %d, want %d", got, want)
	}
}

func TestScanInput(t *testing.T) {
	tests := []struct {
		name        string
		content     string
		wantRows    int
		wantInvalid int
	}{
		{name: "header only", content: "appId,deviceId\n"},
		{name: "valid and invalid rows", content: "sep=;\n\nappId;deviceId\n" + app1 + ";" + dev1 + "\n;;\nx;y\n" + app1 + ";\"" + dev2 + "\"\n",
			wantRows: 3, wantInvalid: 1},
		{name: "UTF-16", content: utf16LE("appId\tdeviceId\r\n" + app1 + "\t" + dev1 + "\r\n" + app1 + "\tz\r\n"),
			wantRows: 2, wantInvalid: 1},
		{name: "many rows", content: "appId,deviceId\n" + strings.Repeat(app1+","+dev1+"\n", 20000),
			wantRows: 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, tt.content)
			summary, err := ScanInput(path)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(tt.content))
			want := InputSummary{Size: int64(len(tt.content)), SHA256: hex.EncodeToString(sum[:]), Rows: tt.wantRows, Invalid: tt.wantInvalid}
			if summary != want {
				t.Errorf("ScanInput() = %+v\nwant         %+v", summary, want)
			}

			rows, err := readInput(t, path, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != summary.Rows {
				t.Errorf("Next returned %d rows, ScanInput counted %d", len(rows), summary.Rows)
			}
		})
	}
}

// guid returns a GUID for test rows that differs for each n.
func guid(n int) string {
	return fmt.Sprintf("%08x-65aa-42ec-a945-5fd21dec0538", n)
}

// swallowedExport is an Intune export whose note on line 3 opens a quote that the note on line 9
// closes by accident, as "12.9-inch" written 12.9". encoding/csv reads lines 3-9 as one record.
func swallowedExport() string {
	var b strings.Builder
	b.WriteString("Device name,Device ID,App ID,Notes\n")
	for i := range 9 {
		note := ""
		switch i {
		case 1:
			note = `"Lobby kiosk, moved to HQ`
		case 7:
			note = `screen 12.9"`
		}
		fmt.Fprintf(&b, "iPad-%d,%s,%s,%s\n", i, guid(i), app1, note)
	}
	return b.String()
}

// swallowedFix is the start of the Fix of a swallowed-rows error for a value that starts on line.
func swallowedFix(line int) string {
	return fmt.Sprintf(`close the quote on line %d, and write a quote that is part of a value as "" inside a quoted value; `+
		"if the value really contains such ids, as a note may, remove them from it", line)
}

func TestInputSwallowedRows(t *testing.T) {
	tests := []struct {
		name        string
		content     string
		wantRows    int
		wantLine    int
		wantProblem string
	}{
		{name: "note closed by a later stray quote", content: swallowedExport(),
			wantRows: 1, wantLine: 3,
			wantProblem: "a quoted value starts on line 3 and ends on line 9, and line 4 inside it has GUIDs at the positions of " +
				"the app id and device id columns (3 and 2), so a stray quote has probably merged lines 3-9 into one record, " +
				"whose ids may come from different rows"},
		{name: "note before the app id, with the app id after the quote",
			// The record would pair the device id of line 2 with the app id of line 3.
			content: "Device name,Device ID,Notes,App ID\n" +
				"iPad-1," + dev1 + ",\"Lobby kiosk," + app1 + "\n" +
				"iPad-2," + dev2 + ",screen 12.9\"," + app2 + "\n" +
				"iPad-3," + dev3 + ",," + app1 + "\n",
			wantLine: 2,
			wantProblem: "a quoted value starts on line 2 and ends on line 3, and the part of line 2 after the opening quote " +
				"has a GUID at the position of the app id column (4)"},
		{name: "inner line with only a device id",
			content: "Device name,Device ID,Notes,App ID\n" +
				"iPad-1," + dev1 + ",\"Lobby kiosk\n" +
				"iPad-2," + dev2 + ",screen 12.9\"," + app2 + "\n",
			wantLine: 2,
			wantProblem: "a quoted value starts on line 2 and ends on line 3, and line 3 inside it has a GUID at the position of " +
				"the device id column (2)"},
		{name: "notes in the first column",
			content: "Notes,Device ID,App ID\n" +
				"\"Lobby kiosk," + dev1 + "," + app1 + "\n" +
				"screen 12.9\"," + dev2 + "," + app2 + "\n",
			wantLine:    2,
			wantProblem: "the part of line 2 after the opening quote has GUIDs at the positions of the app id and device id columns (3 and 2)"},
		{name: "inner line with only an app id",
			content:  "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"moved from\n" + app2 + ",to,here\"\n" + app1 + "," + dev2 + ",x\n",
			wantLine: 2, wantProblem: "line 3 inside it has a GUID at the position of the app id column (1)"},
		{name: "note with old ids in the id positions",
			content:  "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"old ids:\nold-ipad," + app2 + "," + dev2 + "\"\n" + app1 + "," + dev2 + ",x\n",
			wantLine: 2, wantProblem: "line 3 inside it has a GUID at the position of the device id column (2)"},
		{name: "id cell with a GUID before a line break",
			content:  "appId,deviceId,note\n" + app1 + ",\"" + dev1 + "\nx\",n\n" + app1 + "," + dev2 + ",x\n",
			wantLine: 2, wantProblem: "the part of line 2 after the opening quote has a GUID at the position of the device id column (2)"},
		{name: "device id cell closed on a later line",
			content:  "appId,deviceId\n" + app1 + ",\"" + dev1 + "\n" + app1 + "," + dev2 + "\n" + app1 + "," + dev3 + "\"\n" + app2 + "," + dev1 + "\n",
			wantLine: 2, wantProblem: "a quoted value starts on line 2 and ends on line 4, and the part of line 2 after the opening quote has a GUID"},
		{name: "only the last line inside the value has ids",
			content:  "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"a\nb\n" + app2 + "," + dev2 + ",c\"\n",
			wantLine: 2, wantProblem: "a quoted value starts on line 2 and ends on line 4, and line 4 inside it has GUIDs"},
		{name: "semicolons, CRLF and a sep line",
			content: "sep=;\r\nappId;deviceId;note\r\n" + app1 + ";" + dev1 + ";\"open\r\n" + app1 + ";" + dev2 + ";\r\n" +
				app1 + ";" + dev3 + ";closed\"\r\n",
			wantLine: 3, wantProblem: "a quoted value starts on line 3 and ends on line 5, and line 4 inside it has GUIDs"},
		{name: "multi-byte delimiter",
			content:  "sep=§\nappId§deviceId§note\n" + app1 + "§" + dev1 + "§\"x\nsee§" + dev2 + "\"\n",
			wantLine: 3, wantProblem: "line 4 inside it has a GUID at the position of the device id column (2)"},
		{name: "ids in braces and upper case",
			content:  "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"x\n" + " {" + strings.ToUpper(app2) + "} ,{" + dev2 + "},y\nz\"\n",
			wantLine: 2, wantProblem: "line 3 inside it has GUIDs"},
		{name: "value that starts after earlier rows",
			content:  "appId,deviceId,note\n" + app1 + "," + dev1 + ",ok\n" + app1 + "," + dev2 + ",ok\n" + app1 + "," + dev3 + ",\"x\n" + app2 + "," + dev1 + ",\"\n",
			wantRows: 2, wantLine: 4, wantProblem: "a quoted value starts on line 4 and ends on line 5"},
		{name: "second multi-line value of a record",
			content:  "appId,deviceId,a,b\n" + app1 + "," + dev1 + ",\"one\ntwo\",\"three\nfour," + app2 + "\"\n",
			wantLine: 3, wantProblem: "a quoted value starts on line 3 and ends on line 4, and line 4 inside it has a GUID at the position of the device id column (2)"},
		{name: "header cell",
			content:  "appId,deviceId,\"note\n" + app1 + "," + dev1 + ",x\n" + app1 + "," + dev2 + ",y\"\n" + app2 + "," + dev2 + ",z\n",
			wantLine: 1, wantProblem: "a quoted value starts on line 1 and ends on line 3, and line 2 inside it has GUIDs"},
		{name: "UTF-16 with tabs",
			content:  utf16LE("appId\tdeviceId\tnote\r\n" + app1 + "\t" + dev1 + "\t\"x\r\n" + app2 + "\t" + dev2 + "\ty\"\r\n"),
			wantLine: 2, wantProblem: "a quoted value starts on line 2 and ends on line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFatal(t, writeInput(t, tt.content), tt.wantRows, tt.wantLine, tt.wantProblem, swallowedFix(tt.wantLine))
		})
	}
}

func TestInputMultiLineValues(t *testing.T) {
	// Line breaks in a quoted value are data unless a line inside the value has a GUID at the position of
	// an id column.
	tests := []struct {
		name     string
		content  string
		wantRows []Row
	}{
		{
			name:     "note with line breaks",
			content:  "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"Lobby kiosk,\nmoved to HQ\r\n\nfloor 2\"\n" + app1 + "," + dev2 + ",x\n",
			wantRows: []Row{validRow(1, 2, app1, dev1), validRow(2, 6, app1, dev2)},
		},
		{
			name:     "GUIDs outside the id positions",
			content:  "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"old ids:\nx,y," + app2 + "\"\n" + app1 + "," + dev2 + ",x\n",
			wantRows: []Row{validRow(1, 2, app1, dev1), validRow(2, 4, app1, dev2)},
		},
		{
			name:     "first line with a GUID after the id columns",
			content:  "appId,deviceId,note,extra\n" + app1 + "," + dev1 + ",\"see " + app2 + ", " + dev2 + "\nbelow\",x\n",
			wantRows: []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name: "notes in the first column without ids",
			content: "Notes,Device ID,App ID\n\"Lobby kiosk, floor 2\nmoved, 2024\"," + dev1 + "," + app1 + "\n" +
				"\"one\n\ntwo\"," + dev2 + "," + app1 + "\n",
			wantRows: []Row{validRow(1, 2, app1, dev1), validRow(2, 4, app1, dev2)},
		},
		{
			name:     "note before the app id without ids",
			content:  "Device name,Device ID,Notes,App ID\niPad-1," + dev1 + ",\"Lobby kiosk,\nscreen 12.9\"\"\"," + app1 + "\n",
			wantRows: []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:    "id cell with a line break and no GUID",
			content: "appId,deviceId,note\n" + app1 + ",\"iPad\nx\",n\n" + app1 + "," + dev2 + ",x\n",
			wantRows: []Row{
				{Index: 1, Line: 2, AppID: app1, DeviceID: "iPad x",
					Invalid: `device id "iPad\nx" is not a GUID (8-4-4-4-12 hex digits) (the record spans lines 2-3, so a quote may be unbalanced)`},
				validRow(2, 4, app1, dev2),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := readInput(t, writeInput(t, tt.content), false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows, tt.wantRows) {
				t.Errorf("rows = %+v\nwant   %+v", rows, tt.wantRows)
			}
		})
	}
}

func TestInputLoneCarriageReturn(t *testing.T) {
	const fix = `save the file with CR LF or LF line endings, for example from Excel as "CSV UTF-8"`
	row := app1 + "," + dev1
	tests := []struct {
		name     string
		content  string
		wantRows int
		wantLine int
	}{
		{name: "CRLF header, then lines ending in CR alone",
			content:  "appId,deviceId\r\n" + row + "\r\n" + app1 + "," + dev2 + "\r" + app1 + "," + dev3 + "\r" + app2 + "," + dev1 + "\r\n",
			wantRows: 1, wantLine: 3},
		{name: "one line ending in CR alone",
			content:  "appId,deviceId\n" + row + "\n" + row + "\n" + app1 + "," + dev2 + "\r" + app1 + "," + dev3 + "\n",
			wantRows: 2, wantLine: 4},
		{name: "in an unquoted value", content: "appId,deviceId,name\n" + row + ",iPad\rAnn\n", wantLine: 2},
		{name: "at the start of a line", content: "appId,deviceId\n\r" + row + "\n", wantLine: 2},
		{name: "after a closing quote", content: "appId,deviceId,name\n" + row + ",\"iPad\"\r" + row + ",x\n", wantLine: 2},
		{name: "two CRs before text", content: "appId,deviceId\n" + row + "\r\r" + row + "\n", wantLine: 2},
		{name: "after a bare quote", content: "appId,deviceId,name\n" + row + ",10\" iPad\r" + row + ",x\n", wantLine: 2},
		{name: "after a multi-line value",
			content:  "appId,deviceId,name\n" + row + ",\"a\nb\"\r" + app1 + "," + dev2 + ",x\n",
			wantLine: 3},
		{name: "in the header after a sep line", content: "sep=;\n\nappId;device\rId\n", wantLine: 3},
		{name: "CR-only file", content: "appId,deviceId\r" + row + "\r" + row + "\r", wantLine: 1},
		{name: "CR-only file with a sep line", content: "sep=,\r" + "appId,deviceId\r" + row + "\r", wantLine: 1},
		{name: "CR-only file with a byte-order mark and a sep line", content: "\uFEFFsep=;\rappId;deviceId\r", wantLine: 1},
		{name: "CR-only file with a #TYPE line", content: "#TYPE System.Management.Automation.PSCustomObject\r\"appId\",\"deviceId\"\r", wantLine: 1},
		{name: "sep line after a #TYPE line", content: "#TYPE T\nsep=,\rappId,deviceId\r", wantLine: 2},
		{name: "UTF-16 with a multi-byte delimiter",
			content:  utf16LE("sep=§\r\nappId§deviceId\r\n" + app1 + "§" + dev1 + "\r" + app1 + "§" + dev2 + "\r\n"),
			wantLine: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problem := fmt.Sprintf("line %d has a carriage return without a line feed (a classic Mac OS line ending) outside a quoted value, "+
				"so the lines on both sides of it would be read as one row", tt.wantLine)
			checkFatal(t, writeInput(t, tt.content), tt.wantRows, tt.wantLine, problem, fix)
		})
	}
}

func TestInputCRCRLF(t *testing.T) {
	const fix = `save the file with CR LF or LF line endings, for example from Excel as "CSV UTF-8", ` +
		`or in Python by opening the output file with newline='' before csv.writer writes to it`
	row := app1 + "," + dev1
	tests := []struct {
		name     string
		content  string
		wantRows int
		wantLine int
	}{
		{name: "Python csv module on Windows", content: "appId,deviceId\r\r\n" + row + "\r\r\n" + app1 + "," + dev2 + "\r\r\n", wantLine: 1},
		{name: "after rows with LF", content: "appId,deviceId\n" + row + "\n" + app1 + "," + dev2 + "\r\r\n", wantRows: 1, wantLine: 3},
		{name: "after a closing quote", content: "appId,deviceId\r\n\"" + app1 + "\",\"" + dev1 + "\"\r\r\n", wantLine: 2},
		{name: "after a multi-line value", content: "appId,deviceId,note\r\n" + row + ",\"a\r\nb\"\r\r\n", wantLine: 3},
		{name: "sep line", content: "sep=;\r\r\nappId;deviceId\r\r\n", wantLine: 1},
		{name: "#TYPE line", content: "#TYPE System.Management.Automation.PSCustomObject\r\r\n\"appId\",\"deviceId\"\r\r\n", wantLine: 1},
		{name: "UTF-16", content: utf16LE("appId\tdeviceId\r\r\n" + app1 + "\t" + dev1 + "\r\r\n"), wantLine: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problem := fmt.Sprintf("line %d ends with CR CR LF, the line ending that Python's csv module writes on Windows "+
				"to a file opened without newline='', so the last value of every row would end with a stray carriage return", tt.wantLine)
			checkFatal(t, writeInput(t, tt.content), tt.wantRows, tt.wantLine, problem, fix)
		})
	}
}

func TestInputCarriageReturnInQuotedValue(t *testing.T) {
	// A carriage return inside a quoted value is part of the value, which encoding/csv keeps as it is.
	tests := []struct {
		name     string
		content  string
		wantRows []Row
	}{
		{
			name:     "in an ignored column",
			content:  "appId,deviceId,name\n" + app1 + "," + dev1 + ",\"iPad\rAnn\"\n" + app1 + "," + dev2 + ",\"a\r\rb\r\"\n",
			wantRows: []Row{validRow(1, 2, app1, dev1), validRow(2, 3, app1, dev2)},
		},
		{
			name:     "before a line break inside the value",
			content:  "appId,deviceId,name\r\n" + app1 + "," + dev1 + ",\"a\r\r\nb\"\r\n" + app1 + "," + dev2 + ",x\r\n",
			wantRows: []Row{validRow(1, 2, app1, dev1), validRow(2, 4, app1, dev2)},
		},
		{
			name:    "in an id",
			content: "appId,deviceId\n\"" + app1 + "\rx\"," + dev1 + "\n",
			wantRows: []Row{{Index: 1, Line: 2, AppID: app1 + " x", DeviceID: dev1,
				Invalid: `app id "` + app1 + `\rx" is not a GUID (8-4-4-4-12 hex digits)`}},
		},
		{
			name:     "in a header cell",
			content:  "appId,deviceId,\"device\rname\"\n" + app1 + "," + dev1 + ",x\n",
			wantRows: []Row{validRow(1, 2, app1, dev1)},
		},
		{
			name:     "last byte of the file",
			content:  "appId,deviceId\n" + app1 + "," + dev1 + "\r",
			wantRows: []Row{validRow(1, 2, app1, dev1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, tt.content)
			rows, err := readInput(t, path, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows, tt.wantRows) {
				t.Errorf("rows = %+v\nwant   %+v", rows, tt.wantRows)
			}
			summary, err := ScanInput(path)
			if err != nil || summary.Rows != len(tt.wantRows) {
				t.Errorf("ScanInput() = %+v, %v, want %d rows", summary, err, len(tt.wantRows))
			}
		})
	}
}

func TestInputLineLimit(t *testing.T) {
	row := app1 + "," + dev1 + ",x\n"
	// note returns a data line whose length, without its line feed, is n bytes.
	note := func(n int) string {
		prefix := app1 + "," + dev2 + ","
		return prefix + strings.Repeat("n", n-len(prefix)) + "\n"
	}
	tests := []struct {
		name        string
		content     string
		wantRows    int
		wantLine    int
		wantProblem string
		wantFix     string
	}{
		{name: "data line", content: "appId,deviceId,note\n" + row + note(maxLineBytes+1) + row,
			wantRows: 1, wantLine: 3,
			wantProblem: "line 3 is longer than 1 MiB, which a CSV file of app and device ids never needs",
			wantFix:     "check that this is the exported CSV file"},
		{name: "data line after a sep line", content: "sep=,\r\n\r\nappId,deviceId,note\r\n" + strings.Repeat(row, 3) + note(2*maxLineBytes),
			wantRows: 3, wantLine: 7, wantProblem: "line 7 is longer than 1 MiB", wantFix: "shorten or delete the long value"},
		{name: "data line with a quote error", content: "appId,deviceId,note\n" + row + app1 + "," + dev2 + ",10\" " + note(maxLineBytes+1),
			wantRows: 1, wantLine: 3, wantProblem: "line 3 is longer than 1 MiB", wantFix: "shorten or delete the long value"},
		{name: "data line with a quote error in UTF-16",
			content:  utf16LE("appId\tdeviceId\tnote\r\n" + app1 + "\t" + dev1 + "\t\"a\"b" + strings.Repeat("n", maxLineBytes) + "\r\n"),
			wantLine: 2, wantProblem: "line 2 is longer than 1 MiB", wantFix: "shorten or delete the long value"},
		{name: "header line", content: "appId,deviceId,note" + strings.Repeat(",x", maxLineBytes/2) + "\n" + row,
			wantLine: 1, wantProblem: "line 1 is longer than 1 MiB", wantFix: "shorten or delete the long value"},
		{name: "blank line", content: strings.Repeat(" ", maxLineBytes+1) + "\nappId,deviceId\n",
			wantLine: 1, wantProblem: "line 1 is longer than 1 MiB", wantFix: "shorten or delete the long value"},
		{name: "quoted value on one line", content: "appId,deviceId,note\n" + app1 + "," + dev1 + ",\"" + strings.Repeat("q", maxLineBytes) + "\"\n",
			wantLine: 2, wantProblem: "line 2 is longer than 1 MiB", wantFix: "shorten or delete the long value"},
		{name: "UTF-16", content: utf16LE("appId\tdeviceId\tnote\r\n" + strings.Repeat("é", maxLineBytes/2) + "\r\n"),
			wantLine: 2, wantProblem: "line 2 is longer than 1 MiB", wantFix: "shorten or delete the long value"},
		{name: "CR-only file",
			content:  "appId,deviceId\r" + strings.Repeat(app1+","+dev1+"\r", maxLineBytes/70),
			wantLine: 1, wantProblem: "line 1 is longer than 1 MiB and has carriage returns without a line feed, so the file probably has classic Mac OS line endings",
			wantFix: "save the file with CR LF or LF line endings"},
		{name: "CR-only file with a sep line",
			content:  "sep=;\r" + "appId;deviceId\r" + strings.Repeat(app1+";"+dev1+"\r", maxLineBytes/70),
			wantLine: 1, wantProblem: "carriage returns without a line feed", wantFix: "save the file with CR LF or LF line endings"},
		{name: "quoted value over many lines",
			content:  "appId,deviceId,note\n" + row + app1 + "," + dev1 + ",\"never closed\n" + strings.Repeat("a short line\n", maxRecordBytes/10),
			wantRows: 1, wantLine: 3,
			wantProblem: "the record that starts on line 3 is longer than 1 MiB at line ",
			wantFix:     `close the quote, or write a quote inside a quoted value as ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFatal(t, writeInput(t, tt.content), tt.wantRows, tt.wantLine, tt.wantProblem, tt.wantFix)
		})
	}
}

func TestInputLineLimitBoundary(t *testing.T) {
	// A line of exactly maxLineBytes bytes, its line feed not counted, is read.
	prefix := app1 + "," + dev1 + ","
	long := prefix + strings.Repeat("n", maxLineBytes-len(prefix))
	for _, content := range []string{
		"appId,deviceId,note\n" + long + "\n",
		"appId,deviceId,note\n" + long,
		"appId,deviceId,note\n" + app1 + "," + dev1 + ",\"" + strings.Repeat("a\n", maxRecordBytes/2-len(prefix)) + "\"\n",
	} {
		rows, err := readInput(t, writeInput(t, content), false)
		if err != nil {
			t.Fatalf("%d-byte file: %v", len(content), err)
		}
		if want := []Row{validRow(1, 2, app1, dev1)}; !slices.Equal(rows, want) {
			t.Errorf("%d-byte file: rows = %+v, want %+v", len(content), rows, want)
		}
	}
}

func TestInputLineLimitMemory(t *testing.T) {
	// Without a limit below encoding/csv, reading a line allocates at least its length. With the limit,
	// reading a long line allocates up to about 7 MiB, mostly in encoding/csv, whatever its length.
	const lineBytes, maxAllocated = 32 << 20, 16 << 20
	for _, tt := range []struct{ name, prefix string }{
		{name: "header line", prefix: "appId,deviceId,"},
		{name: "data line", prefix: "appId,deviceId,note\n" + app1 + "," + dev1 + ","},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "input.csv")
			file, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			content := io.MultiReader(strings.NewReader(tt.prefix), io.LimitReader(repeatReader('x'), lineBytes), strings.NewReader("\n"))
			if _, err := io.Copy(file, content); err != nil {
				t.Fatal(err)
			}
			if err := file.Close(); err != nil {
				t.Fatal(err)
			}

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = ScanInput(path)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("ScanInput error = nil, want an error for the long line")
			}
			if allocated := after.TotalAlloc - before.TotalAlloc; allocated > maxAllocated {
				t.Errorf("ScanInput allocated %d bytes for a %d-byte line, want at most %d", allocated, lineBytes, maxAllocated)
			}
		})
	}
}

// repeatReader is an endless reader of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestInputInvalidCellShortened(t *testing.T) {
	tests := []struct {
		name string
		cell string // the app id cell, written in quotes
		want string
	}{
		{name: "100 characters", cell: strings.Repeat("a", 100), want: strings.Repeat("a", 100)},
		{name: "101 characters", cell: strings.Repeat("a", 101), want: strings.Repeat("a", 100) + "…"},
		{name: "long cell", cell: strings.Repeat("abc", 200_000), want: strings.Repeat("abc", 33) + "a…"},
		{name: "multi-byte characters", cell: strings.Repeat("é☃", 60), want: strings.Repeat("é☃", 50) + "…"},
		{name: "line breaks", cell: "a\r\nb\nc\rd\u2028e", want: "a b c d e"},
		{name: "line breaks after the cut", cell: strings.Repeat("a", 100) + "\n\n", want: strings.Repeat("a", 100) + "…"},
		{name: "invalid UTF-8", cell: "a\xff\xfeb", want: "a\uFFFD\uFFFDb"},
		{name: "invalid UTF-8 at the cut", cell: strings.Repeat("a", 99) + "\xe2\x98", want: strings.Repeat("a", 99) + "\uFFFD…"},
		{name: "blank", cell: " \n ", want: "   "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := "appId,deviceId,name\n\"" + tt.cell + "\"," + dev1 + ",x\n"
			rows, err := readInput(t, writeInput(t, content), false)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 {
				t.Fatalf("got %d rows, want 1", len(rows))
			}
			if got := rows[0].AppID; got != tt.want {
				t.Errorf("AppID = %q, want %q", got, tt.want)
			}
			if rows[0].Invalid == "" {
				t.Errorf("Invalid is empty, want a reason")
			}
			if got := rows[0].Invalid; len(got) > 300 || strings.ContainsAny(got, "\r\n") || !utf8.ValidString(got) {
				t.Errorf("Invalid = %q, want at most 300 bytes of valid UTF-8 on one line", got)
			}
		})
	}

	// The device id of a row with a wrong field count and of a row with a quote error is shortened too.
	long := strings.Repeat("d", 500)
	rows, err := readInput(t, writeInput(t, "appId,deviceId,name\n"+app1+","+long+",x,y\n"+app1+","+long+",10\" iPad\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(rows))
	}
	for _, row := range rows {
		if want := long[:100] + "…"; row.DeviceID != want {
			t.Errorf("row %d: DeviceID = %q, want %q", row.Index, row.DeviceID, want)
		}
	}
}

func TestInputSHA256(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{name: "UTF-8", content: "appId,deviceId\n" + strings.Repeat(app1+","+dev1+"\n", 3)},
		{name: "byte-order mark and sep line", content: "\uFEFFsep=;\r\nappId;deviceId\r\n" + app1 + ";" + dev1 + "\r\n"},
		{name: "UTF-16", content: utf16LE("appId\tdeviceId\r\n" + app1 + "\t" + dev1 + "\r\n")},
		{name: "UTF-16 with an odd last byte", content: utf16LE("appId\tdeviceId\r\n"+app1+"\t"+dev1+"\r\n") + "\x00"},
		{name: "final CR", content: "appId,deviceId\n" + app1 + "," + dev1 + "\r"},
		{name: "many rows", content: "appId,deviceId\n" + strings.Repeat(app1+","+dev1+"\n", 20000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, tt.content)
			sum := sha256.Sum256([]byte(tt.content))
			want := hex.EncodeToString(sum[:])

			summary, err := ScanInput(path)
			if err != nil {
				t.Fatal(err)
			}
			if summary.SHA256 != want {
				t.Errorf("ScanInput().SHA256 = %s, want %s", summary.SHA256, want)
			}

			in, err := OpenInput(path, false)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			for {
				_, err := in.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := in.SHA256(); got != want {
				t.Errorf("SHA256() after io.EOF = %s, want %s", got, want)
			}
		})
	}
}

func TestInputSHA256InPlaceEdit(t *testing.T) {
	// The file is larger than the read buffers, so the edit lies past what the first row reads.
	original := "appId,deviceId\n" + strings.Repeat(app1+","+dev1+"\n", 20000)
	edited := strings.Replace(original, dev1, dev2, 19000) // same size and rows, other content
	path := writeInput(t, original)
	summary, err := ScanInput(path)
	if err != nil {
		t.Fatal(err)
	}

	in, err := OpenInput(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.Next(); err != nil {
		t.Fatal(err)
	}
	readBefore := in.Offset()
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	rows := 1
	for {
		_, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rows++
	}

	if rows != summary.Rows || in.Offset() != summary.Size {
		t.Fatalf("after the edit: %d rows and %d bytes, want the %d rows and %d bytes of ScanInput", rows, in.Offset(), summary.Rows, summary.Size)
	}
	if got := in.SHA256(); got == summary.SHA256 {
		t.Errorf("SHA256() after an in-place edit = %s, the hash of ScanInput, want another", got)
	}
	sum := sha256.Sum256([]byte(original[:readBefore] + edited[readBefore:]))
	if got, want := in.SHA256(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("SHA256() = %s, want %s, the hash of the %d bytes read before the edit and the rest after it", got, want, readBefore)
	}
}

func TestOpenInputNotRegularFile(t *testing.T) {
	const problem, fix = "is not a regular file (a pipe, socket or device)", "save the rows to a file first"

	// A pipe, as bash passes for --input <(cat rows.csv). Its writer is closed, so that a read of the
	// pipe ends at once.
	reader, writer, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	writer.Close()
	paths := map[string]string{"pipe": fmt.Sprintf("/dev/fd/%d", reader.Fd()), "device": os.DevNull}

	// A named pipe, which Open would wait on until a writer opened it, and a symbolic link to it.
	fifo := filepath.Join(t.TempDir(), "fifo.csv")
	if err := exec.Command("mkfifo", fifo).Run(); err == nil {
		paths["named pipe"] = fifo
		link := filepath.Join(t.TempDir(), "link.csv")
		if err := os.Symlink(fifo, link); err == nil {
			paths["link to a named pipe"] = link
		}
	}

	tested := 0
	for name, path := range paths {
		if _, err := os.Stat(path); err != nil {
			t.Logf("skipping the %s %s: %v", name, path, err)
			continue
		}
		tested++
		t.Run(name, func(t *testing.T) {
			_, err := OpenInput(path, false)
			var inputErr *InputError
			if !errors.As(err, &inputErr) {
				t.Fatalf("OpenInput error = %v, want an *InputError", err)
			}
			checkInputError(t, inputErr, path, 0, problem, fix)
			if msg, want := err.Error(), path+": "+problem+"; "+fix; msg != want {
				t.Errorf("Error() = %q, want %q", msg, want)
			}

			_, err = ScanInput(path)
			if !errors.As(err, &inputErr) || inputErr.Problem != problem {
				t.Errorf("ScanInput error = %v, want %q", err, problem)
			}
		})
	}
	if tested == 0 {
		t.Skip("no pipe or device path on this system")
	}
}

func TestOpenInputSymlink(t *testing.T) {
	dir := t.TempDir()
	target := writeInput(t, "appId,deviceId\n"+app1+","+dev1+"\n")
	link := filepath.Join(dir, "link.csv")
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("cannot create a symbolic link: %v", err)
	}
	rows, err := readInput(t, link, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Row{validRow(1, 2, app1, dev1)}; !slices.Equal(rows, want) {
		t.Errorf("rows through a symbolic link = %+v, want %+v", rows, want)
	}

	dirLink := filepath.Join(dir, "dir.csv")
	if err := os.Symlink(t.TempDir(), dirLink); err != nil {
		t.Skipf("cannot create a symbolic link: %v", err)
	}
	_, err = OpenInput(dirLink, false)
	var inputErr *InputError
	if !errors.As(err, &inputErr) {
		t.Fatalf("OpenInput(link to a directory) error = %v, want an *InputError", err)
	}
	checkInputError(t, inputErr, dirLink, 0, "is a directory, not a file", "give the path of the CSV file")
}

func TestInputMisleadingFormats(t *testing.T) {
	// Each file has bytes that a later check would misread, such as the CR NUL LF NUL line ending of
	// UTF-16, so the message must name the first problem.
	const (
		zipProblem = "is a ZIP archive (an Excel workbook, an OpenDocument sheet, or a downloaded report that needs unzipping), not a CSV file"
		zipFix     = "unzip it or in Excel use File > Save As > CSV UTF-8"
	)
	tests := []struct {
		name        string
		content     string
		wantLine    int
		wantProblem string
		wantFix     string
	}{
		{name: "UTF-16LE without byte-order mark, with CRLF",
			content:     utf16LE("Device name\tDevice ID\tApp ID\r\niPad\t" + dev1 + "\t" + app1 + "\r\n")[2:],
			wantProblem: "the header contains NUL bytes, so the file is probably UTF-16 without a byte-order mark",
			wantFix:     `save it from Excel as "CSV UTF-8"`},
		{name: "UTF-16BE without byte-order mark, with CRLF",
			content:     utf16BE("appId,deviceId\r\n" + app1 + "," + dev1 + "\r\n")[2:],
			wantProblem: "probably UTF-16 without a byte-order mark", wantFix: `save it from Excel as "CSV UTF-8"`},
		{name: "UTF-16LE without byte-order mark, after blank lines",
			content:     "\n\n" + utf16LE("appId,deviceId\r\n")[2:],
			wantProblem: "probably UTF-16 without a byte-order mark", wantFix: `save it from Excel as "CSV UTF-8"`},
		{name: "CR-only with a sep line", content: "sep=,\rappId,deviceId\r" + app1 + "," + dev1 + "\r",
			wantLine: 1, wantProblem: "line 1 has a carriage return without a line feed", wantFix: "save the file with CR LF or LF line endings"},
		{name: "Excel workbook", content: "PK\x03\x04\x14\x00\x00\x00\x08\x00[Content_Types].xml",
			wantProblem: zipProblem, wantFix: zipFix},
		{name: "OpenDocument sheet", content: "PK\x03\x04\x14\x00\x00\x08\x00\x00mimetypeapplication/vnd.oasis.opendocument.spreadsheet",
			wantProblem: zipProblem, wantFix: zipFix},
		{name: "zip archive signature only", content: "PK\x03\x04",
			wantProblem: zipProblem, wantFix: zipFix},
		{name: "empty zip archive", content: "PK\x05\x06" + strings.Repeat("\x00", 18),
			wantProblem: zipProblem, wantFix: zipFix},
		{name: "sep line after a #TYPE line without a delimiter", content: "#TYPE T\nsep=\nappId,deviceId\n",
			wantLine: 2, wantProblem: `the line after the #TYPE line "sep=\n" starts like an Excel sep= line but does not name one delimiter`,
			wantFix: "write it as sep=;"},
		{name: "#TYPE line only", content: "#TYPE System.Management.Automation.PSCustomObject\r\n",
			wantProblem: "no header row", wantFix: "add a header row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFatal(t, writeInput(t, tt.content), 0, tt.wantLine, tt.wantProblem, tt.wantFix)
		})
	}
}

func TestInputPowerShellTypeLine(t *testing.T) {
	tests := []struct {
		name       string
		content    string
		wantFormat InputFormat
		wantRows   []Row
	}{
		{
			name: "Export-Csv of PowerShell 5",
			content: "#TYPE System.Management.Automation.PSCustomObject\r\n\"deviceName\",\"managedDeviceId\",\"appId\"\r\n" +
				"\"iPad-1\",\"" + dev1 + "\",\"" + app1 + "\"\r\n\"iPad-2\",\"" + dev2 + "\",\"" + app1 + "\"\r\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: ','},
			wantRows:   []Row{validRow(1, 3, app1, dev1), validRow(2, 4, app1, dev2)},
		},
		{
			name:       "byte-order mark and selected properties",
			content:    "\uFEFF#TYPE Selected.Microsoft.Graph.PowerShell.Models.MicrosoftGraphManagedDevice\r\n\"appId\";\"deviceId\"\r\n\"" + app1 + "\";\"" + dev1 + "\"\r\n",
			wantFormat: InputFormat{Encoding: "UTF-8 with BOM", Delimiter: ';'},
			wantRows:   []Row{validRow(1, 3, app1, dev1)},
		},
		{
			name:       "sep line after it",
			content:    "#TYPE System.Management.Automation.PSCustomObject\nsep=|\nappId|deviceId|a,b\n" + app1 + "|" + dev1 + "|x,y\n",
			wantFormat: InputFormat{Encoding: "UTF-8", Delimiter: '|', SepLine: true},
			wantRows:   []Row{validRow(1, 4, app1, dev1)},
		},
		{
			name:       "UTF-16",
			content:    utf16LE("#TYPE System.Management.Automation.PSCustomObject\r\n\"appId\",\"deviceId\"\r\n\"" + app1 + "\",\"" + dev1 + "\"\r\n"),
			wantFormat: InputFormat{Encoding: "UTF-16LE", Delimiter: ','},
			wantRows:   []Row{validRow(1, 3, app1, dev1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeInput(t, tt.content)
			in, err := OpenInput(path, false)
			if err != nil {
				t.Fatalf("OpenInput: %v", err)
			}
			format := in.Format()
			in.Close()
			if format != tt.wantFormat {
				t.Errorf("Format() = %+v, want %+v", format, tt.wantFormat)
			}

			rows, err := readInput(t, path, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows, tt.wantRows) {
				t.Errorf("rows = %+v\nwant   %+v", rows, tt.wantRows)
			}
		})
	}

	// A #TYPE line is recognised only as the first line, so a later one is a data row.
	path := writeInput(t, "appId,deviceId\n#TYPE x,y\n")
	rows, err := readInput(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Invalid == "" {
		t.Errorf("rows = %+v, want one invalid row", rows)
	}
}

func TestInputTrailingEmptyCells(t *testing.T) {
	tests := []struct {
		name   string
		header string
		line   string
		want   Row
	}{
		{name: "one empty cell", header: "appId,deviceId", line: app1 + "," + dev1 + ",",
			want: validRow(1, 2, app1, dev1)},
		{name: "several empty cells", header: "appId,deviceId", line: app1 + "," + dev1 + ",,,",
			want: validRow(1, 2, app1, dev1)},
		{name: "white space and empty quotes", header: "appId,deviceId", line: app1 + "," + dev1 + ", ,\"\",\t",
			want: validRow(1, 2, app1, dev1)},
		{name: "notify column", header: "deviceId,appId,notify", line: dev1 + "," + app1 + ",yes,,",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1, Notify: true}},
		{name: "semicolons", header: "appId;deviceId", line: app1 + ";" + dev1 + ";;",
			want: validRow(1, 2, app1, dev1)},
		{name: "non-empty extra cell", header: "appId,deviceId", line: app1 + "," + dev1 + ",,x",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1,
				Invalid: `has 4 fields, but the header has 2; put a value that contains ',' in quotes`}},
		{name: "fewer cells", header: "appId,deviceId,name", line: app1 + "," + dev1,
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1, Invalid: "has 2 fields, but the header has 3"}},
		{name: "empty cells after an invalid id", header: "appId,deviceId", line: "x," + dev1 + ",",
			want: Row{Index: 1, Line: 2, AppID: "x", DeviceID: dev1, Invalid: `app id "x" is not a GUID (8-4-4-4-12 hex digits)`}},
		{name: "header ends with a delimiter", header: "appId,deviceId,", line: app1 + "," + dev1,
			want: validRow(1, 2, app1, dev1)},
		{name: "header and row end with a delimiter", header: "appId,deviceId,", line: app1 + "," + dev1 + ",",
			want: validRow(1, 2, app1, dev1)},
		{name: "header ends with blank cells", header: "appId,deviceId,, ,\"\"", line: app1 + "," + dev1 + ",,",
			want: validRow(1, 2, app1, dev1)},
		{name: "header ends with a semicolon", header: "deviceId;appId;notify;", line: dev1 + ";" + app1 + ";no",
			want: validRow(1, 2, app1, dev1)},
		{name: "value under an empty header cell", header: "appId,deviceId,", line: app1 + "," + dev1 + ",x",
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1,
				Invalid: `has 3 fields, but the header names 2 columns (the empty cells at its end do not count); put a value that contains ',' in quotes`}},
		{name: "fewer cells than the named columns", header: "appId,deviceId,name,", line: app1 + "," + dev1,
			want: Row{Index: 1, Line: 2, AppID: app1, DeviceID: dev1,
				Invalid: "has 2 fields, but the header names 3 columns (the empty cells at its end do not count)"}},
		{name: "empty header cell in the middle", header: "appId,,deviceId", line: app1 + "," + dev1,
			want: Row{Index: 1, Line: 2, AppID: app1, Invalid: "has 2 fields, but the header has 3"}},
		{name: "value under an empty header cell in the middle", header: "appId,,deviceId", line: app1 + ",x," + dev1,
			want: validRow(1, 2, app1, dev1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := readInput(t, writeInput(t, tt.header+"\n"+tt.line+"\n"), false)
			if err != nil {
				t.Fatal(err)
			}
			if want := []Row{tt.want}; !slices.Equal(rows, want) {
				t.Errorf("rows = %+v\nwant   %+v", rows, want)
			}
		})
	}
}

func TestInputRowsWithoutControlCharacters(t *testing.T) {
	// NUL and other control characters in a cell must not reach a report through a row.
	content := "appId,deviceId,name,notify\n" +
		"\"a\x00b\"," + dev1 + ",x,\n" + // 2: NUL in an invalid id
		app1 + ",\"\x01\x1f\x7f\u0085\u2028\t\",x,\n" + // 3: C0, DEL, C1, a line separator and a tab
		app1 + ",d\x00," + dev1 + ",x,y\n" + // 4: wrong field count
		app1 + ",d\x00,10\" iPad,\n" + // 5: quote error
		app1 + "," + dev1 + ",\x00iPad\x1b[31m,\n" + // 6: control characters in an ignored column
		app1 + "," + dev1 + ",x,\x00yes\n" // 7: invalid notify value
	rows, err := readInput(t, writeInput(t, content), false)
	if err != nil {
		t.Fatal(err)
	}

	want := []struct{ appID, deviceID string }{
		{"a b", dev1},
		{app1, "      "},
		{app1, "d "},
		{app1, "d "},
		{app1, dev1},
		{app1, dev1},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d", len(rows), len(want))
	}
	for i, row := range rows {
		if row.AppID != want[i].appID || row.DeviceID != want[i].deviceID {
			t.Errorf("row %d: ids %q, %q, want %q, %q", row.Index, row.AppID, row.DeviceID, want[i].appID, want[i].deviceID)
		}
		if wantValid := row.Index == 5; (row.Invalid == "") != wantValid {
			t.Errorf("row %d: Invalid = %q, want it empty only for row 5", row.Index, row.Invalid)
		}
		for name, value := range map[string]string{"AppID": row.AppID, "DeviceID": row.DeviceID, "Invalid": row.Invalid} {
			if i := strings.IndexFunc(value, isReportBreaking); i >= 0 {
				t.Errorf("row %d: %s = %q has the control character %q at byte %d, want none", row.Index, name, value, value[i:i+1], i)
			}
		}
	}
}

// isReportBreaking reports whether r is a control character or a Unicode line or paragraph separator,
// which Row fields must not contain.
func isReportBreaking(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// FuzzInput feeds arbitrary bytes to the reader. It checks that nothing panics, that Index counts up
// from 1 and Line goes up, and that every row is either valid with normalised GUIDs or has a one-line
// reason and ids fit for a report. No row field may have a control character. Reading one byte at a
// time must give the same rows and error, and ScanInput must agree with OpenInput and Next and hash
// the whole content.
func FuzzInput(f *testing.F) {
	row := app1 + "," + dev1 + "\n"
	seeds := []string{
		"",
		"\n\n",
		"appId,deviceId\n" + row,
		"appId,deviceId,notify\n" + app1 + "," + dev1 + ",yes\n" + app1 + "," + dev2 + ",maybe\n",
		"sep=;\r\nappId;deviceId\r\n;;\r\n" + app1 + ";" + dev1 + "\r\n",
		"appId\tdeviceId\n" + app1 + "\t" + dev1 + "\n",
		"\uFEFFappId,deviceId\n{" + strings.ToUpper(app1) + "}, " + dev1 + " \n",
		utf16LE("appId\tdeviceId\r\n" + app1 + "\t" + dev1 + "\r\n"),
		utf16LE("appId\tdeviceId\r\n") + "\x00",
		"appId,Device name,deviceId\n" + app1 + ",\"a,\"\"b\"\"\nc\"," + dev1 + "\n",
		"appId,deviceId,x\n" + app1 + "," + dev1 + ",\xff\xfe\n",
		"appId,deviceId\n" + app1 + ",\"" + dev1 + "\n" + row,
		"appId,deviceId\n" + app1 + ",\"" + dev1 + "\n" + row + app1 + ",\"x\"y\n",
		"appId,deviceId\na,b\"c\n" + row,
		"appId,deviceId\n" + app1 + "," + dev1 + ",extra\n" + app1 + "\n",
		"Device name,Microsoft Entra Device ID,appId\n",
		"appId,deviceId,applicationId\n",
		"appId,deviceId\r" + row,
		"sep=\n",
		"DeviceId,ApplicationId,AppInstallState_loc\n" + dev1 + "," + app1 + ",Installé\n",
		swallowedExport(),
		"appId,deviceId,note\n" + app1 + "," + dev1 + ",\"a\nb\n" + app2 + "," + dev2 + ",c\"\n",
		"appId,deviceId\r\n" + row + app1 + "," + dev2 + "\r" + app1 + "," + dev3 + "\r\n",
		"appId,deviceId,name\n" + app1 + "," + dev1 + ",\"iPad\rAnn\"\n\"" + app1 + "\rx\"," + dev1 + ",\r\n",
		"sep=,\rappId,deviceId\r" + row,
		"sep=§\r\nappId§deviceId§note\r\n" + app1 + "§" + dev1 + "§\"a\"§\r\n" + app1 + "§" + dev2 + "§\"b\"\xc2\r\n",
		"#TYPE System.Management.Automation.PSCustomObject\r\n\"deviceName\",\"managedDeviceId\",\"appId\"\r\n\"iPad\",\"" + dev1 + "\",\"" + app1 + "\"\r\n",
		"#TYPE T\nsep=;\nappId;deviceId\n" + app1 + ";" + dev1 + "\n",
		"appId,deviceId\n" + app1 + "," + dev1 + ",\n" + app1 + "," + dev2 + ",, ,\n" + app1 + "," + dev3 + ",,x\n",
		"PK\x03\x04\x14\x00",
		utf16LE("appId\tdeviceId\r\n" + app1 + "\t" + dev1 + "\r\n")[2:],
		"appId,deviceId,name\n\"" + strings.Repeat("é\n", 80) + "\"," + strings.Repeat("d", 150) + ",x,y\n",
		"Device name,Device ID,Notes,App ID\niPad-1," + dev1 + ",\"Lobby kiosk," + app1 + "\niPad-2," + dev2 + ",screen 12.9\"," + app2 + "\n",
		"Device name,Device ID,Notes,App ID\niPad-1," + dev1 + ",\"Lobby kiosk\niPad-2," + dev2 + ",screen 12.9\"," + app2 + "\n",
		"Notes,Device ID,App ID\n\"Lobby kiosk," + dev1 + "," + app1 + "\nscreen 12.9\"," + dev2 + "," + app2 + "\n",
		"appId,deviceId,note\n" + app1 + "," + dev1 + ",\"old ids:\nold-ipad," + app2 + "," + dev2 + "\"\n",
		"appId,deviceId,note\n" + app1 + ",\"" + dev1 + "\nx\",n\n" + app1 + "," + dev1 + ",\"a\nx,y," + app2 + "\"\n",
		"sep=§\nappId§deviceId§note\n" + app1 + "§" + dev1 + "§\"x\nsee§" + dev2 + "\"\n",
		"appId,deviceId\r\r\n" + app1 + "," + dev1 + "\r\r\n",
		"sep=;\r\r\nappId;deviceId\r\r\n",
		"appId,deviceId\n" + row + app1 + "," + dev2 + "\r\r" + row,
		"appId,deviceId,\n" + row + app1 + "," + dev2 + ",\n" + app1 + "," + dev3 + ",x\n",
		"appId,,deviceId, ,\n" + app1 + ",," + dev1 + "\n",
		"PK\x05\x06" + strings.Repeat("\x00", 18),
		"appId,deviceId,name,notify\n\"a\x00b\"," + dev1 + ",\x1b[31m,\x00yes\n" + app1 + ",\"\x01\x7f\u0085\u2028\t\",x,\n",
	}
	for _, seed := range seeds {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "input.csv")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}

		rows, readErr := readInput(t, path, false)
		for i, row := range rows {
			if row.Index != i+1 {
				t.Fatalf("row %d has Index %d", i+1, row.Index)
			}
			if i > 0 && row.Line <= rows[i-1].Line {
				t.Fatalf("row %d starts on line %d, after row %d on line %d", row.Index, row.Line, i, rows[i-1].Line)
			}
			if row.Invalid == "" {
				if !isNormalisedGUID(row.AppID) || !isNormalisedGUID(row.DeviceID) {
					t.Fatalf("valid row %d has ids %q and %q, want normalised GUIDs", row.Index, row.AppID, row.DeviceID)
				}
			} else if strings.ContainsAny(row.Invalid, "\r\n") || !utf8.ValidString(row.Invalid) {
				t.Fatalf("row %d: Invalid = %q, want valid UTF-8 on one line", row.Index, row.Invalid)
			}
			for _, id := range []string{row.AppID, row.DeviceID} {
				if strings.ContainsAny(id, "\r\n") || !utf8.ValidString(id) || utf8.RuneCountInString(id) > maxReportCellChars+1 {
					t.Fatalf("row %d: id %q, want at most %d characters of valid UTF-8 on one line", row.Index, id, maxReportCellChars+1)
				}
			}
			for _, field := range []string{row.AppID, row.DeviceID, row.Invalid} {
				if strings.ContainsFunc(field, isReportBreaking) {
					t.Fatalf("row %d: field %q has a control character, want none", row.Index, field)
				}
			}
		}
		if readErr != nil {
			var inputErr *InputError
			if !errors.As(readErr, &inputErr) {
				t.Fatalf("error = %v, want an *InputError", readErr)
			}
			// A regular file never fails to read, so an underlying error means that a decoder failed.
			if inputErr.Err != nil {
				t.Fatalf("error = %v, want no underlying read error", readErr)
			}
			if msg := readErr.Error(); strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) || strings.ContainsFunc(msg, isReportBreaking) {
				t.Fatalf("Error() = %q, want valid UTF-8 on one line without control characters", msg)
			}
		}

		oneByteRows, oneByteErr := readInputOneByte(t, path, content)
		if !slices.Equal(oneByteRows, rows) || fmt.Sprint(oneByteErr) != fmt.Sprint(readErr) {
			t.Fatalf("read one byte at a time: %d rows and error %v, want %d rows and error %v", len(oneByteRows), oneByteErr, len(rows), readErr)
		}

		summary, scanErr := ScanInput(path)
		switch {
		case (readErr == nil) != (scanErr == nil):
			t.Fatalf("Next error = %v, ScanInput error = %v", readErr, scanErr)
		case readErr != nil && readErr.Error() != scanErr.Error():
			t.Fatalf("Next error = %v, ScanInput error = %v", readErr, scanErr)
		case readErr == nil && summary.Rows != len(rows):
			t.Fatalf("ScanInput counted %d rows, Next returned %d", summary.Rows, len(rows))
		case readErr == nil && summary.Invalid != countInvalid(rows):
			t.Fatalf("ScanInput counted %d invalid rows, Next returned %d", summary.Invalid, countInvalid(rows))
		case readErr == nil && summary.Size != int64(len(content)):
			t.Fatalf("ScanInput Size = %d, want %d", summary.Size, len(content))
		case readErr == nil && summary.SHA256 != fmt.Sprintf("%x", sha256.Sum256(content)):
			t.Fatalf("ScanInput SHA256 = %s, want the hash of the content", summary.SHA256)
		}
	})
}

// countInvalid returns the number of rows with a reason in Invalid.
func countInvalid(rows []Row) int {
	n := 0
	for _, row := range rows {
		if row.Invalid != "" {
			n++
		}
	}
	return n
}

func isNormalisedGUID(s string) bool {
	g, ok := parseGUID(s)
	return ok && g.String() == s
}

// writeBenchmarkInput writes a file of rows data rows shaped like an Intune export: a few apps, many
// devices, and columns that the reader ignores.
func writeBenchmarkInput(b *testing.B, rows int) string {
	b.Helper()
	var content bytes.Buffer
	content.WriteString("Device name,Device ID,Microsoft Entra Device ID,Serial number,appId,notify\r\n")
	for i := range rows {
		fmt.Fprintf(&content, "iPad-%06d,%08x-7425-40de-944b-e07fc1f90ae7,%08x-65aa-42ec-a945-5fd21dec0538,DMPX%06d,%s,%t\r\n",
			i, i, i, i, []string{app1, app2}[i%2], i%3 == 0)
	}
	path := filepath.Join(b.TempDir(), "input.csv")
	if err := os.WriteFile(path, content.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkInputNext reads a generated 100,000-row file and reports rows per second and allocations
// per row.
func BenchmarkInputNext(b *testing.B) {
	const rows = 100_000
	path := writeBenchmarkInput(b, rows)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	files := 0
	for b.Loop() {
		in, err := OpenInput(path, false)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			row, err := in.Next()
			if err == io.EOF {
				break
			}
			if err != nil || row.Invalid != "" {
				b.Fatalf("row %d: %v %s", n+1, err, row.Invalid)
			}
			n++
		}
		in.Close()
		if n != rows {
			b.Fatalf("read %d rows, want %d", n, rows)
		}
		files++
	}
	runtime.ReadMemStats(&after)

	b.ReportMetric(float64(files*rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(files*rows), "allocs/row")
}
