package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the report as a table: aligned columns with a heading
// that says what the times measure on a terminal (aligned is true), and
// stable tab-separated columns under a header line when piped.
func WriteTable(w io.Writer, r Report, aligned bool) error {
	counters := false
	for _, c := range r.Cases {
		counters = counters || c.Counters != nil
	}
	head := []string{"case", "min_ms", "median_ms", "max_ms", "gflops", "baseline_ms", "speedup"}
	if counters {
		head = append(head, "mma", "tg_bytes", "tg_traffic", "device_bytes", "barriers", "dispatches")
	}
	if !aligned {
		head = append(head, "time_source") // piped: what the times are, on every line
	}
	var tw *tabwriter.Writer
	out, end := w, ""
	if aligned {
		end = "\t" // right-aligned cells must be terminated
		fmt.Fprintf(w, "backend %s on %s; %s; warm-up %d, repeats %d\n", r.Backend, r.Device, TimeLabel(r.TimeSource), r.Warmup, r.Repeat)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		out = tw
	}
	fmt.Fprintln(out, strings.Join(head, "\t")+end)
	for _, c := range r.Cases {
		row := []string{c.Name, ms(c.MS.Min), ms(c.MS.Median), ms(c.MS.Max), fmt.Sprintf("%.2f", c.GFlops),
			ms(c.BaselineMS), fmt.Sprintf("%.2fx", c.Speedup)}
		if counters && c.Counters != nil {
			k := c.Counters
			row = append(row, fmt.Sprint(k.SimdgroupMMA), fmt.Sprint(k.ThreadgroupBytes), fmt.Sprint(k.ThreadgroupTrafficBytes),
				fmt.Sprint(k.DeviceBytes), fmt.Sprint(k.Barriers), fmt.Sprint(k.Dispatches))
		}
		if !aligned {
			row = append(row, r.TimeSource)
		}
		fmt.Fprintln(out, strings.Join(row, "\t")+end)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// TimeLabel says what a time source's figures are.
func TimeLabel(source string) string {
	switch source {
	case "gpu":
		return "times are GPU time (command-buffer timestamps)"
	case "emu":
		return "times are emulation time on the CPU (time_source=emu), not GPU figures"
	}
	return "times from time source " + fmt.Sprintf("%q", source)
}

func ms(x float64) string { return fmt.Sprintf("%.3f", x) }
