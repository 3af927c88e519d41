package transit

import (
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestShippedTables(t *testing.T) {
	ts := shippedTables(t)
	var ids []string
	for _, op := range ts.Operators() {
		ids = append(ids, op.ID)
	}
	if got := strings.Join(ids, " "); got != "BJSUBWAY HZBUS HZMETRO SHMETRO" {
		t.Fatalf("operators %s", got)
	}
	var keys []string
	for _, g := range ts.Groups() {
		keys = append(keys, g.Key+"="+strings.Join(g.Operators, "+"))
	}
	if got := strings.Join(keys, " "); got != "city/beijing=BJSUBWAY city/hangzhou=HZBUS+HZMETRO operator/SHMETRO=SHMETRO" {
		t.Fatalf("groups %s", got)
	}
	hz, _ := ts.Operator("HZMETRO")
	sh, _ := ts.Operator("SHMETRO")
	bus, _ := ts.Operator("HZBUS")
	bj, _ := ts.Operator("BJSUBWAY")
	fares := []struct {
		op       *Operator
		from, to string
		line     string
		want     int64
	}{
		{hz, "0101", "0102", "", 200}, // 1.5 km
		{hz, "0101", "0104", "", 300}, // 4.2 km: past the first 4 km
		{hz, "0101", "0106", "", 400}, // 8.4 km
		{hz, "0101", "0110", "", 500}, // 12.7 km
		{hz, "0101", "0122", "", 700}, // 30.9 km
		{hz, "0122", "0101", "", 700}, // either way
		{hz, "0101", "0101", "", 200}, // no distance: the base fare
		{hz, "0116", "0101", "", 500}, // by Line 4, shorter than Line 1
		{sh, "0101", "0104", "", 300}, // 4.5 km
		{sh, "0101", "0105", "", 400}, // 6.1 km
		{sh, "0101", "0113", "", 400}, // 15.8 km
		{sh, "0101", "0117", "", 500}, // 20.3 km
		{sh, "0128", "0221", "", 700}, // 20.1 + 16.0 km through People's Square
		{bj, "0101", "0104", "", 300}, // 5.5 km: up to 6 km
		{bj, "0101", "0105", "", 400}, // 6.8 km
		{bj, "0101", "0108", "", 400}, // 11.2 km
		{bj, "0101", "0110", "", 500}, // 13.8 km
		{bj, "0101", "0121", "", 600}, // 26.1 km
		{bj, "0401", "0433", "", 700}, // 42.2 km: 32 km and part of the next 20
		{bj, "0101", "BT13", "", 700}, // 45.4 km on Line 1 and the Batong Line
		{bj, "0433", "BT13", "", 800}, // 52.7 km through Xidan: past 52 km
		{bj, "0412", "0116", "", 400}, // Xizhimen to Wangfujing by Xidan: 7.8 km
		{bus, "K155-01", "K155-01", "K155", 200},
		{bus, "B1-02", "B1-02", "", 300}, // the stop's only route
	}
	for _, f := range fares {
		got, ok := f.op.Fare(f.from, f.to, f.line)
		if !ok || got != f.want {
			t.Errorf("%s %s>%s: %d %v, want %d", f.op.ID, f.from, f.to, got, ok, f.want)
		}
	}
	if _, ok := hz.Fare("0101", "9999", ""); ok {
		t.Error("a fare to an unknown station")
	}
	if !hz.HasStation("0111", "2") || !hz.HasStation("0111", "1") || hz.HasStation("0101", "2") {
		t.Error("Fengqi Road is on lines 1 and 2, Xianghu only on line 1")
	}
	if hz.Group() != bus.Group() || hz.Group() == sh.Group() {
		t.Error("Hangzhou's metro and bus share a group, Shanghai has its own")
	}
}

func TestTravelDay(t *testing.T) {
	ts := shippedTables(t)
	hz, _ := ts.Group("city/hangzhou")
	sh, _ := ts.Group("operator/SHMETRO")
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", s, shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		g    *Group
		at   string
		want string
	}{
		{hz, "2026-03-03 03:59:59", "2026-03-02"},
		{hz, "2026-03-03 04:00:00", "2026-03-03"},
		{sh, "2026-03-03 04:59:59", "2026-03-02"},
		{sh, "2026-03-03 05:00:00", "2026-03-03"},
		{hz, "2026-01-01 02:00:00", "2025-12-31"},
	} {
		if got := c.g.DayOf(at(c.at)).String(); got != c.want {
			t.Errorf("%s at %s: day %s, want %s", c.g.Key, c.at, got, c.want)
		}
		// The same instant written in UTC is the same travel day.
		if got := c.g.DayOf(at(c.at).UTC()).String(); got != c.want {
			t.Errorf("%s at %s UTC: day %s, want %s", c.g.Key, c.at, got, c.want)
		}
	}
	d := DayOf(2026, time.March, 2)
	if got := hz.DayStart(d); !got.Equal(at("2026-03-02 04:00:00")) {
		t.Errorf("day start %s", got)
	}
	if got := hz.ClosesAt(d); !got.Equal(at("2026-03-03 09:00:00")) {
		t.Errorf("closes at %s, want the end, 4 hours of open journeys and an hour's grace", got)
	}
	for i := range 7 {
		if ws := (d + Day(i)).WeekStart(); ws != d {
			t.Errorf("%s: week starts %s", d+Day(i), ws)
		}
	}
	if ws := (d + 7).WeekStart(); ws != d+7 {
		t.Errorf("next Monday's week starts %s", ws)
	}
	if p, err := ParseDay("2026-03-02"); err != nil || p != d {
		t.Errorf("ParseDay: %v %v", p, err)
	}
	if _, err := ParseDay("2026-3-2"); err == nil {
		t.Error("ParseDay took 2026-3-2")
	}
}

// minimal is a valid flat fare file; each case breaks one thing.
func minimal() map[string]any {
	return map[string]any{
		"operator_id": "TESTBUS", "name": "Test bus", "city": "testcity", "mode": "bus",
		"source": "a test", "time_zone": "Asia/Shanghai", "currency": "CNY", "travel_day_start_hour": 4,
		"pricing": "flat", "flat_fare": "2.00", "incomplete_after_minutes": 0, "same_station_exit_minutes": 0,
		"caps": map[string]any{"scope": "operator", "daily": "10.00"},
		"lines": []any{map[string]any{"id": "1", "name": "Route 1", "stations": []any{
			map[string]any{"id": "S1", "name": "First"}, map[string]any{"id": "S2", "name": "Second"}}}},
	}
}

func metroFile() map[string]any {
	m := minimal()
	m["operator_id"], m["mode"], m["pricing"] = "TESTMETRO", "metro", "distance"
	delete(m, "flat_fare")
	m["incomplete_after_minutes"], m["same_station_exit_minutes"] = 120, 10
	m["max_fare"] = "5.00"
	m["distance_fare"] = map[string]any{"base_fare": "2.00", "base_m": 5000,
		"bands": []any{map[string]any{"every_m": 5000, "add": "1.00"}}}
	m["lines"] = []any{
		map[string]any{"id": "A", "name": "A", "stations": []any{
			map[string]any{"id": "A1", "name": "A one", "at_m": 0},
			map[string]any{"id": "X", "name": "Cross", "at_m": 6000}}},
		map[string]any{"id": "B", "name": "B", "stations": []any{
			map[string]any{"id": "X", "name": "Cross", "at_m": 0},
			map[string]any{"id": "B1", "name": "B one", "at_m": 9000}}},
	}
	return m
}

func TestParseOperatorRefuses(t *testing.T) {
	set := func(base func() map[string]any, change func(m map[string]any)) map[string]any {
		m := base()
		change(m)
		return m
	}
	line := func(m map[string]any, i int) map[string]any { return m["lines"].([]any)[i].(map[string]any) }
	station := func(m map[string]any, l, s int) map[string]any {
		return line(m, l)["stations"].([]any)[s].(map[string]any)
	}
	cases := []struct {
		name string
		file any
		want string
	}{
		{"unknown field", set(minimal, func(m map[string]any) { m["fare"] = "2.00" }), `unknown field "fare"`},
		{"no id", set(minimal, func(m map[string]any) { m["operator_id"] = "" }), "operator_id: missing"},
		{"id with a space", set(minimal, func(m map[string]any) { m["operator_id"] = "A B" }), "operator_id: must be printable ascii"},
		{"mode", set(minimal, func(m map[string]any) { m["mode"] = "ferry" }), `mode: "ferry", want metro or bus`},
		{"zone", set(minimal, func(m map[string]any) { m["time_zone"] = "Europe/Berlin" }), "time_zone"},
		{"currency", set(minimal, func(m map[string]any) { m["currency"] = "USD" }), "currency"},
		{"no start hour", set(minimal, func(m map[string]any) { delete(m, "travel_day_start_hour") }), "travel_day_start_hour: missing"},
		{"start hour", set(minimal, func(m map[string]any) { m["travel_day_start_hour"] = 24 }), "travel_day_start_hour: 24"},
		{"fare three decimals", set(minimal, func(m map[string]any) { m["flat_fare"] = "2.005" }), "flat_fare: \"2.005\" has more than 2 decimals"},
		{"fare as float", set(minimal, func(m map[string]any) { m["flat_fare"] = 2.0 }), "cannot unmarshal number"},
		{"fare negative", set(minimal, func(m map[string]any) { m["flat_fare"] = "-2.00" }), "flat_fare: \"-2.00\" is not an amount"},
		{"fare huge", set(minimal, func(m map[string]any) { m["flat_fare"] = "20000.00" }), "is more than 10000.00"},
		{"pricing", set(minimal, func(m map[string]any) { m["pricing"] = "zone" }), `pricing: "zone"`},
		{"cap scope", set(minimal, func(m map[string]any) { m["caps"] = map[string]any{"scope": "country"} }), "caps.scope"},
		{"zero cap", set(minimal, func(m map[string]any) { m["caps"] = map[string]any{"scope": "operator", "daily": "0"} }), "caps.daily: zero"},
		{"weekly below daily", set(minimal, func(m map[string]any) {
			m["caps"] = map[string]any{"scope": "operator", "daily": "10.00", "weekly": "5.00"}
		}), "caps.weekly: 5.00 is below the daily cap 10.00"},
		{"transfer window", set(minimal, func(m map[string]any) {
			m["transfer"] = map[string]any{"window_minutes": 0, "discount": "1.00"}
		}), "transfer.window_minutes: 0"},
		{"no lines", set(minimal, func(m map[string]any) { m["lines"] = []any{} }), "lines: none"},
		{"station twice", set(minimal, func(m map[string]any) { station(m, 0, 1)["id"] = "S1" }), `lines[0].stations[1].id: station "S1" twice on line "1"`},
		{"max fare below flat", set(minimal, func(m map[string]any) { m["max_fare"] = "1.00" }), "max_fare: 1.00 is below the highest flat fare 2.00"},
		{"line fare on distance", set(metroFile, func(m map[string]any) { line(m, 0)["flat_fare"] = "2.00" }), "lines[0].flat_fare: only flat pricing"},
		{"no position", set(metroFile, func(m map[string]any) { delete(station(m, 1, 1), "at_m") }), "lines[1].stations[1].at_m: missing"},
		{"position backwards", set(metroFile, func(m map[string]any) { station(m, 0, 1)["at_m"] = 0 }), "lines[0].stations[1].at_m: 0, must increase"},
		{"interchange renamed", set(metroFile, func(m map[string]any) { station(m, 1, 0)["name"] = "Other" }), `station "X" is "Cross" on another line`},
		{"disconnected", set(metroFile, func(m map[string]any) { station(m, 1, 0)["id"], station(m, 1, 0)["name"] = "Y", "Why" }), "cannot be reached"},
		{"max fare below a fare", set(metroFile, func(m map[string]any) { m["max_fare"] = "3.00" }), "max_fare: 3.00 is below the highest station-to-station fare 4.00"},
		{"no max fare", set(metroFile, func(m map[string]any) { delete(m, "max_fare") }), "max_fare: missing"},
		{"no limit", set(metroFile, func(m map[string]any) { m["incomplete_after_minutes"], m["same_station_exit_minutes"] = 0, 0 }), "incomplete_after_minutes: distance pricing needs a limit"},
		{"same station beyond limit", set(metroFile, func(m map[string]any) { m["same_station_exit_minutes"] = 121 }), "same_station_exit_minutes: 121"},
		{"last band bounded", set(metroFile, func(m map[string]any) {
			m["distance_fare"].(map[string]any)["bands"] = []any{map[string]any{"up_to_m": 9000, "every_m": 5000, "add": "1.00"}}
		}), "bands[0].up_to_m: the last band prices every longer distance"},
		{"bands backwards", set(metroFile, func(m map[string]any) {
			m["distance_fare"].(map[string]any)["bands"] = []any{
				map[string]any{"up_to_m": 4000, "every_m": 5000, "add": "1.00"}, map[string]any{"every_m": 5000, "add": "1.00"}}
		}), "bands[0].up_to_m: 4000, want more than 5000"},
		{"flat fare on distance", set(metroFile, func(m map[string]any) { m["flat_fare"] = "2.00" }), "flat_fare: not used by distance pricing"},
		{"monthly below weekly", set(minimal, func(m map[string]any) {
			m["caps"] = map[string]any{"scope": "operator", "daily": "10.00", "weekly": "50.00", "monthly": "40.00"}
		}), "caps.monthly: 40.00 is below the weekly cap 50.00"},
		{"monthly below daily", set(minimal, func(m map[string]any) {
			m["caps"] = map[string]any{"scope": "operator", "daily": "10.00", "monthly": "5.00"}
		}), "caps.monthly: 5.00 is below the daily cap 10.00"},
		{"free transfer with a discount", set(minimal, func(m map[string]any) {
			m["transfer"] = map[string]any{"window_minutes": 60, "discount": "1.00", "free": true}
		}), "transfer.discount: a free transfer has no discount"},
		{"tier period", set(minimal, func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "year", "tiers": []any{map[string]any{"from": "100.00", "percent_off": 20}}}
		}), `spend_tiers.period: "year", want day, week or month`},
		{"no tiers", set(minimal, func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "month", "tiers": []any{}}
		}), "spend_tiers.tiers: 0, want 1 to 8"},
		{"tiers backwards", set(minimal, func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "month", "tiers": []any{
				map[string]any{"from": "150.00", "percent_off": 50}, map[string]any{"from": "100.00", "percent_off": 20}}}
		}), "spend_tiers.tiers[1].from: 100.00, want more than the tier before (150.00)"},
		{"tier from zero", set(minimal, func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "month", "tiers": []any{map[string]any{"from": "0", "percent_off": 20}}}
		}), "spend_tiers.tiers[0].from: zero"},
		{"tier percent", set(minimal, func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "day", "tiers": []any{map[string]any{"from": "10.00", "percent_off": 120}}}
		}), "spend_tiers.tiers[0].percent_off: 120, want 0 to 100"},
		{"tier without percent", set(minimal, func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "day", "tiers": []any{map[string]any{"from": "10.00"}}}
		}), "spend_tiers.tiers[0].percent_off: missing"},
		{"tier percent as a float", set(minimal, func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "day", "tiers": []any{map[string]any{"from": "10.00", "percent_off": 20.5}}}
		}), "cannot unmarshal number 20.5"},
		{"band time", set(minimal, func(m map[string]any) {
			m["time_of_day"] = []any{map[string]any{"name": "peak", "from": "7:00", "to": "09:00", "days": "all", "fare_percent": 120}}
		}), `time_of_day[0].from: "7:00", want a time of day`},
		{"band backwards", set(minimal, func(m map[string]any) {
			m["time_of_day"] = []any{map[string]any{"name": "peak", "from": "09:00", "to": "07:00", "days": "all", "fare_percent": 120}}
		}), "time_of_day[0].to: 07:00, want after from (09:00)"},
		{"band 24:30", set(minimal, func(m map[string]any) {
			m["time_of_day"] = []any{map[string]any{"name": "late", "from": "22:00", "to": "24:30", "days": "all", "fare_percent": 120}}
		}), `time_of_day[0].to: "24:30" is not a time of day`},
		{"bands overlap", set(minimal, func(m map[string]any) {
			m["time_of_day"] = []any{
				map[string]any{"name": "peak", "from": "07:00", "to": "09:00", "days": "weekdays", "fare_percent": 120},
				map[string]any{"name": "off-peak", "from": "08:30", "to": "16:00", "days": "all", "fare_percent": 90}}
		}), "time_of_day[1]: 08:30 to 16:00 overlaps time_of_day[0]"},
		{"band days", set(minimal, func(m map[string]any) {
			m["time_of_day"] = []any{map[string]any{"name": "peak", "from": "07:00", "to": "09:00", "days": "mondays", "fare_percent": 120}}
		}), `time_of_day[0].days: "mondays", want all or weekdays`},
		{"band percent", set(minimal, func(m map[string]any) {
			m["time_of_day"] = []any{map[string]any{"name": "peak", "from": "07:00", "to": "09:00", "days": "all", "fare_percent": 301}}
		}), "time_of_day[0].fare_percent: 301, want 0 to 300"},
		{"band without a name", set(minimal, func(m map[string]any) {
			m["time_of_day"] = []any{map[string]any{"from": "07:00", "to": "09:00", "days": "all", "fare_percent": 120}}
		}), "time_of_day[0].name: missing"},
		{"peak above the maximum fare", set(minimal, func(m map[string]any) {
			m["max_fare"] = "2.00"
			m["time_of_day"] = []any{map[string]any{"name": "peak", "from": "07:00", "to": "09:00", "days": "all", "fare_percent": 150}}
		}), "max_fare: 2.00 is below the highest flat fare 3.00"},
		{"concession class", set(minimal, func(m map[string]any) {
			m["concessions"] = []any{map[string]any{"class": "Senior", "fare_percent": 0}}
		}), "concessions[0].class: want lowercase letters"},
		{"concession twice", set(minimal, func(m map[string]any) {
			m["concessions"] = []any{map[string]any{"class": "senior", "fare_percent": 0}, map[string]any{"class": "senior", "fare_percent": 50}}
		}), `concessions[1].class: "senior" twice`},
		{"concession above the fare", set(minimal, func(m map[string]any) {
			m["concessions"] = []any{map[string]any{"class": "student", "fare_percent": 110}}
		}), "concessions[0].fare_percent: 110, want 0 to 100"},
		{"trailing data", "TRAILING", "data after the fare table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var data []byte
			if s, ok := c.file.(string); ok && s == "TRAILING" {
				b, _ := json.Marshal(minimal())
				data = append(b, []byte(" {}")...)
			} else {
				var err error
				if data, err = json.Marshal(c.file); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ParseOperator(data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	for _, f := range []func() map[string]any{minimal, metroFile} {
		b, _ := json.Marshal(f())
		if _, err := ParseOperator(b); err != nil {
			t.Errorf("the valid base file is refused: %v", err)
		}
	}
}

// A new operator is a new file: Load takes it with the others, no code involved, and checks the
// operators sharing a city's cap agree.
func TestLoadNewOperatorFile(t *testing.T) {
	files := fstest.MapFS{}
	for _, op := range shippedNames(t) {
		b, err := shipped.ReadFile("fares/" + op + ".json")
		if err != nil {
			t.Fatal(err)
		}
		files[op+".json"] = &fstest.MapFile{Data: b}
	}
	ferry := minimal()
	ferry["operator_id"], ferry["city"] = "HZTRAM", "hangzhou"
	ferry["caps"] = map[string]any{"scope": "city", "daily": "15.00", "weekly": "60.00"}
	b, _ := json.Marshal(ferry)
	files["HZTRAM.json"] = &fstest.MapFile{Data: b}
	ts, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := ts.Group("city/hangzhou"); strings.Join(g.Operators, ",") != "HZBUS,HZMETRO,HZTRAM" {
		t.Fatalf("hangzhou group %v", g.Operators)
	}

	ferry["caps"] = map[string]any{"scope": "city", "daily": "12.00", "weekly": "60.00"}
	b, _ = json.Marshal(ferry)
	files["HZTRAM.json"] = &fstest.MapFile{Data: b}
	if _, err := Load(files); err == nil || !strings.Contains(err.Error(), "caps differ") {
		t.Fatalf("a city cap that disagrees: %v", err)
	}
	ferry["caps"] = map[string]any{"scope": "city", "daily": "15.00", "weekly": "60.00"}
	ferry["travel_day_start_hour"] = 3
	b, _ = json.Marshal(ferry)
	files["HZTRAM.json"] = &fstest.MapFile{Data: b}
	if _, err := Load(files); err == nil || !strings.Contains(err.Error(), "travel day starts at 3") {
		t.Fatalf("a start hour that disagrees: %v", err)
	}
	files["OTHER.json"] = files["HZTRAM.json"]
	if _, err := Load(files); err == nil || !strings.Contains(err.Error(), "want the file named after it") {
		t.Fatalf("a file named after another operator: %v", err)
	}
}

func shippedNames(t *testing.T) []string {
	entries, err := shipped.ReadDir("fares")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

func TestParseFen(t *testing.T) {
	for s, want := range map[string]int64{"2": 200, "2.5": 250, "2.05": 205, "0.01": 1, "0": 0, "10000": 1_000_000} {
		if got, err := parseFen(s); err != nil || got != want {
			t.Errorf("parseFen(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", ".5", "2.", "02.00", "1e3", "+2", "2,00", "2.001", "10000.01", "99999999999999999999"} {
		if got, err := parseFen(s); err == nil {
			t.Errorf("parseFen(%q) = %d, want an error", s, got)
		}
	}
	if FormatFen(-150) != "-1.50" || FormatFen(7) != "0.07" {
		t.Errorf("FormatFen: %s %s", FormatFen(-150), FormatFen(7))
	}
}
