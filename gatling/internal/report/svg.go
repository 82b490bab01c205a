package report

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/goblog/goblog/gatling/internal/stats"
)

// series is one line of a line chart.
type series struct {
	Name  string
	Color string
	Dash  bool
	X, Y  []float64
}

const (
	chartW, chartH             = 1000, 300
	padL, padR, padT, padB     = 70, 20, 20, 45
	plotW, plotH               = chartW - padL - padR, chartH - padT - padB
	axisColor, gridColor, font = "#444", "#ddd", "font-family=\"sans-serif\" font-size=\"12\""
)

func esc(s string) string { return template.HTMLEscapeString(s) }

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// frame draws the axes, grid and labels of a chart whose y runs 0 … ymax and x
// xmin … xmax, and returns the opening of the SVG.
func frame(b *strings.Builder, id, title, xLabel, yLabel string, xmin, xmax, ymax float64) {
	fmt.Fprintf(b, `<svg id="%s" class="chart" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%">`, esc(id), esc(title), chartW, chartH)
	fmt.Fprintf(b, `<title>%s</title>`, esc(title))
	for i := 0; i <= 5; i++ {
		y := float64(padT) + float64(plotH)*(1-float64(i)/5)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`, padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" %s>%s</text>`, padL-6, y+4, font, num(ymax*float64(i)/5))
	}
	step := niceMax((xmax - xmin) / 10)
	for v := math.Ceil(xmin/step) * step; v <= xmax+step/1000; v += step {
		x := float64(padL) + float64(plotW)*(v-xmin)/(xmax-xmin)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`, x, padT+plotH, x, padT+plotH+4, axisColor)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" %s>%s</text>`, x, padT+plotH+16, font, num(v))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`, padL, padT+plotH, padL+plotW, padT+plotH, axisColor)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`, padL, padT, padL, padT+plotH, axisColor)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" %s>%s</text>`, padL+plotW/2, chartH-6, font, esc(xLabel))
	fmt.Fprintf(b, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle" %s>%s</text>`, padT+plotH/2, font, esc(yLabel))
}

// lineChart draws series over a shared x axis.
func lineChart(id, title, xLabel, yLabel string, ss []series) template.HTML {
	var b strings.Builder
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range ss {
		for i := range s.X {
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			if !math.IsNaN(s.Y[i]) {
				ymax = math.Max(ymax, s.Y[i])
			}
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 0, 1
	}
	xmin = 0
	if xmax <= xmin {
		xmax = xmin + 1
	}
	ymax = niceMax(ymax)
	frame(&b, id, title, xLabel, yLabel, xmin, xmax, ymax)
	for _, s := range ss {
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="6 4"`
		}
		// A NaN (an interval with nothing to measure) breaks the line: one
		// polyline per run of measured points.
		var pts strings.Builder
		n := 0
		flush := func() {
			if n > 0 {
				fmt.Fprintf(&b, `<polyline class="series" data-name="%s" fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, esc(s.Name), s.Color, dash, strings.TrimSpace(pts.String()))
			}
			pts.Reset()
			n = 0
		}
		for i := range s.X {
			if math.IsNaN(s.Y[i]) {
				flush()
				continue
			}
			x := float64(padL) + float64(plotW)*(s.X[i]-xmin)/(xmax-xmin)
			y := float64(padT) + float64(plotH)*(1-s.Y[i]/ymax)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
			n++
		}
		flush()
	}
	// legend
	for i, s := range ss {
		x := padL + 10 + i*150
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d" %s>%s</text>`, x, padT+4, s.Color, x+18, padT+10, font, esc(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

// barChart draws vertical bars over labelled categories.
func barChart(id, title, xLabel, yLabel string, labels []string, values []float64, color string) template.HTML {
	var b strings.Builder
	ymax := 0.0
	for _, v := range values {
		ymax = math.Max(ymax, v)
	}
	ymax = niceMax(ymax)
	frameBars(&b, id, title, xLabel, yLabel, ymax)
	n := len(values)
	if n > 0 {
		w := float64(plotW) / float64(n)
		step := (n + 9) / 10
		for i, v := range values {
			h := float64(plotH) * v / ymax
			x := float64(padL) + w*float64(i)
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
				x+1, float64(padT+plotH)-h, math.Max(w-2, 1), h, color, esc(labels[i]), num(v))
			if i%step == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" %s>%s</text>`, x+w/2, padT+plotH+16, font, esc(labels[i]))
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

func frameBars(b *strings.Builder, id, title, xLabel, yLabel string, ymax float64) {
	fmt.Fprintf(b, `<svg id="%s" class="chart" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%">`, esc(id), esc(title), chartW, chartH)
	fmt.Fprintf(b, `<title>%s</title>`, esc(title))
	for i := 0; i <= 5; i++ {
		y := float64(padT) + float64(plotH)*(1-float64(i)/5)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`, padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" %s>%s</text>`, padL-6, y+4, font, num(ymax*float64(i)/5))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`, padL, padT+plotH, padL+plotW, padT+plotH, axisColor)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" %s>%s</text>`, padL+plotW/2, chartH-6, font, esc(xLabel))
	fmt.Fprintf(b, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle" %s>%s</text>`, padT+plotH/2, font, esc(yLabel))
}

// shareChart draws one horizontal bar per replica with its count and share.
func shareChart(id, title string, names []string, counts []int64, shares []float64) template.HTML {
	var b strings.Builder
	rowH := 28
	h := padT + rowH*len(names) + 30
	if len(names) == 0 {
		h = padT + 40
	}
	fmt.Fprintf(&b, `<svg id="%s" class="chart" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%">`, esc(id), esc(title), chartW, h)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	if len(names) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s>no answer named a replica (servedBy)</text>`, padL, padT+20, font)
	}
	labelW := 160
	barMax := float64(chartW - labelW - 220)
	for i := range names {
		y := padT + i*rowH
		w := barMax * shares[i] / 100
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" %s>%s</text>`, labelW-8, y+17, font, esc(names[i]))
		fmt.Fprintf(&b, `<rect class="share" x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`, labelW, y+4, math.Max(w, 1), rowH-8, palette[i%len(palette)], esc(names[i]))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s>%d (%.1f %%)</text>`, float64(labelW)+math.Max(w, 1)+8, y+17, font, counts[i], shares[i])
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

// rangeColors are the colours of Gatling's ranges: fast, medium, slow, failed.
var rangeColors = []string{"#68b65c", "#ffa900", "#f15b4f", "#a50000"}

// rangesChart draws the response-time ranges as one bar split in
// proportion to their counts, with a legend giving each count and share.
func rangesChart(id, title string, ranges []stats.Range) template.HTML {
	var b strings.Builder
	h := padT + 36 + 24*len(ranges) + 10
	fmt.Fprintf(&b, `<svg id="%s" class="chart" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%">`, esc(id), esc(title), chartW, h)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	var total int64
	for _, r := range ranges {
		total += r.Count
	}
	barW := float64(chartW - 2*padL)
	x := float64(padL)
	if total == 0 {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="24" fill="none" stroke="%s"/>`, padL, padT, barW, gridColor)
	}
	for i, r := range ranges {
		if total == 0 || r.Count == 0 {
			continue
		}
		w := barW * float64(r.Count) / float64(total)
		fmt.Fprintf(&b, `<rect class="range" x="%.1f" y="%d" width="%.1f" height="24" fill="%s"><title>%s: %d (%.2f %%)</title></rect>`,
			x, padT, w, rangeColors[i%len(rangeColors)], esc(r.Name), r.Count, r.Percentage)
		x += w
	}
	for i, r := range ranges {
		y := padT + 36 + 24*i
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="14" fill="%s"/><text x="%d" y="%d" %s>%s: %d (%.2f %%)</text>`,
			padL, y, rangeColors[i%len(rangeColors)], padL+20, y+12, font, esc(r.Name), r.Count, r.Percentage)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every text above is escaped
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}
