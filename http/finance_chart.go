package http

import (
	"cmp"
	"slices"

	"github.com/joinincard/engine/settlement"
)

// The chart of a week's settled amounts: for each of the seven cycles up to the newest, a bar
// per bank of what its file stated (positive, the bank receives; negative, it pays), on an axis
// in CNY through zero, with a legend of the banks. It is computed here and drawn by the page's
// template as inline SVG: no script, no image to load.
//
// Amounts stay int64 fen; only the geometry, pixels on the screen, is floating point.

const (
	chartWidth  = 760
	chartLeft   = 96  // room for the amounts on the axis
	chartRight  = 12  //
	chartTop    = 16  //
	chartPlot   = 240 // the plot's height
	chartBottom = 44  // room for the dates and the axis title
	chartLegend = 20  // a line of the legend
	// chartMaxBanks bounds the banks drawn apart: ten colours tell apart at a glance. The banks
	// past it, the smallest by what they settled in the week, are drawn together as "other
	// banks".
	chartMaxBanks = 10
	// chartTicks is about how many steps the amount axis is divided in.
	chartTicks = 5
)

// chartColours are ten colours that stay apart for most kinds of colour vision (Tableau 10).
var chartColours = [chartMaxBanks]string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
	"#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

// chartOther is the colour of the banks drawn together.
const chartOther = "#555555"

type chartView struct {
	Empty         bool
	Width, Height int
	// The plot area.
	Left, Right, Top, Bottom float64
	ZeroY                    float64
	Ticks                    []chartTick
	Days                     []chartDay
	Bars                     []chartBar
	Legend                   []chartLegendEntry
	// From and To are the cycles the chart covers.
	From, To string
	// AxisX and AxisY place the axes' titles.
	AxisX, AxisY float64
}

type chartTick struct {
	Y     float64
	Label string
}

type chartDay struct {
	X     float64
	Label string
}

type chartBar struct {
	X, Y, W, H float64
	Colour     string
	Title      string // bank, day and amount, shown on hover and read by screen readers
}

type chartLegendEntry struct {
	Y      float64
	Colour string
	Label  string
}

// chartSeries is one bank's bars, or the other banks' together.
type chartSeries struct {
	label  string
	colour string
	banks  []string
	week   int64 // the sum of |amount| over the week: which banks are drawn apart
}

// newChart draws the week of cycles up to last from what each bank's files stated.
func newChart(last settlement.Date, week map[settlement.Date]map[string]int64, names map[string]string) chartView {
	days := make([]settlement.Date, financeChartDays)
	for i := range days {
		days[i] = settlement.AddDays(last, i-(financeChartDays-1))
	}
	var series []*chartSeries
	byBank := map[string]*chartSeries{}
	for _, d := range days {
		for bank, net := range week[d] {
			s := byBank[bank]
			if s == nil {
				s = &chartSeries{banks: []string{bank}, label: bank}
				if n := names[bank]; n != "" {
					s.label = bank + " " + n
				}
				byBank[bank] = s
				series = append(series, s)
			}
			s.week = satAdd(s.week, abs64(net))
		}
	}
	if len(series) == 0 {
		return chartView{Empty: true, From: days[0].String(), To: last.String()}
	}
	slices.SortFunc(series, func(a, b *chartSeries) int { return cmp.Compare(a.banks[0], b.banks[0]) })
	if len(series) > chartMaxBanks {
		bySize := slices.Clone(series)
		slices.SortStableFunc(bySize, func(a, b *chartSeries) int { return cmp.Compare(b.week, a.week) })
		kept := map[*chartSeries]bool{}
		for _, s := range bySize[:chartMaxBanks-1] {
			kept[s] = true
		}
		other := &chartSeries{label: "other banks", colour: chartOther}
		var drawn []*chartSeries
		for _, s := range series {
			if kept[s] {
				drawn = append(drawn, s)
			} else {
				other.banks = append(other.banks, s.banks...)
			}
		}
		series = append(drawn, other)
	}
	for i, s := range series {
		if s.colour == "" {
			s.colour = chartColours[i%len(chartColours)]
		}
	}

	// Each series' amount per day, and the range the axis must hold (zero always in it).
	amounts := make([][]int64, len(series))
	var lo, hi int64
	for i, s := range series {
		amounts[i] = make([]int64, len(days))
		for j, d := range days {
			for _, b := range s.banks {
				amounts[i][j] = satAdd(amounts[i][j], week[d][b])
			}
			lo, hi = min(lo, amounts[i][j]), max(hi, amounts[i][j])
		}
	}
	step := niceStep(hi, lo)
	top, bottom := ceilTo(hi, step), floorTo(lo, step)
	if top == bottom {
		top = bottom + step
	}

	v := chartView{Width: chartWidth, Left: chartLeft, Right: chartWidth - chartRight, Top: chartTop, Bottom: chartTop + chartPlot,
		From: days[0].String(), To: last.String()}
	v.Height = chartTop + chartPlot + chartBottom + chartLegend*len(series) + 8
	y := func(fen int64) float64 {
		return v.Top + (float64(top)-float64(fen))/(float64(top)-float64(bottom))*chartPlot
	}
	v.ZeroY = y(0)
	for t := bottom; ; t += step {
		v.Ticks = append(v.Ticks, chartTick{Y: y(t), Label: fmtMoney(t)})
		if t >= top || t > top-step { // the last tick, without stepping past int64
			break
		}
	}
	group := (v.Right - v.Left) / float64(len(days))
	bar := group * 0.8 / float64(len(series))
	for j, d := range days {
		x0 := v.Left + group*float64(j) + group*0.1
		v.Days = append(v.Days, chartDay{X: v.Left + group*(float64(j)+0.5), Label: d.String()[5:] + " " + weekday(d)})
		for i, s := range series {
			a := amounts[i][j]
			if a == 0 {
				continue
			}
			y0, y1 := y(a), v.ZeroY
			if a < 0 {
				y0, y1 = v.ZeroY, y(a)
			}
			h := max(y1-y0, 1) // a bar too small to see is a line, not nothing
			v.Bars = append(v.Bars, chartBar{X: x0 + bar*float64(i), Y: y0, W: max(bar-1, 1), H: h, Colour: s.colour,
				Title: s.label + ", cycle " + d.String() + ": " + fmtMoney(a) + " CNY"})
		}
	}
	for i, s := range series {
		v.Legend = append(v.Legend, chartLegendEntry{Y: v.Bottom + chartBottom + chartLegend*float64(i) + 4, Colour: s.colour, Label: s.label})
	}
	v.AxisX = v.Bottom + 36
	v.AxisY = v.Top + chartPlot/2
	return v
}

// niceStep is a step of the amount axis, in fen: 1, 2 or 5 times a power of ten, so that about
// chartTicks steps cover lo to hi (hi >= 0 >= lo). A week of nothing but zeros gets 100.00.
func niceStep(hi, lo int64) int64 {
	span := uint64(hi) - uint64(lo) // the difference fits in uint64
	if span == 0 {
		return 100_00
	}
	raw := max(span/chartTicks, 1)
	for p := uint64(1); ; p *= 10 {
		for _, m := range []uint64{1, 2, 5} {
			if m*p >= raw { // raw < 2^62, so 5e18 ends the loop without overflow
				return int64(min(m*p, 1<<62))
			}
		}
	}
}

// ceilTo rounds v up to a multiple of step, or to the largest int64 when that multiple is past
// it; floorTo rounds down likewise. The result always holds v.
func ceilTo(v, step int64) int64 {
	if v <= 0 {
		return -((-v) / step * step)
	}
	q := v / step * step
	if q == v {
		return v
	}
	if q > (1<<63-1)-step {
		return 1<<63 - 1
	}
	return q + step
}

func floorTo(v, step int64) int64 { return -ceilTo(-max(v, -(1<<63-1)), step) }

func abs64(v int64) int64 {
	if v < 0 {
		if v == -1<<63 {
			return 1<<63 - 1
		}
		return -v
	}
	return v
}

// satAdd adds, saturating at the bounds of int64: a chart's scale, never a balance.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return 1<<63 - 1
	case b < 0 && s > a:
		return -1 << 63
	}
	return s
}

// weekday names a date's day of the week, short.
func weekday(d settlement.Date) string {
	return settlement.DateTime(d).Weekday().String()[:3]
}
