package bench

import (
	"fmt"
	"reflect"
	"slices"
)

// Median combines runs of the same configuration: every figure, percentile
// and ratio is the median over the runs (the mean of the middle two for an
// even count). Ratios are the medians of each run's own ratio, since both
// sides of a run share the machine's moment. Targets are judged on the
// medians. The runs are kept in Runs; config and machine are the first
// run's, with the load average at the last run's end.
func Median(runs []*Result) *Result {
	if len(runs) == 0 {
		return nil
	}
	out := *runs[0]
	out.Runs = runs
	out.Config.Repeat = len(runs)
	out.Config.WallSeconds = 0
	for _, r := range runs {
		out.Config.WallSeconds += r.Config.WallSeconds
	}
	out.Machine.LoadAvgEnd = runs[len(runs)-1].Machine.LoadAvgEnd
	v := reflect.ValueOf(&out).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		at := func(r *Result) reflect.Value { return reflect.ValueOf(r).Elem().Field(i) }
		switch f.Interface().(type) {
		case float64, int64, int:
			f.Set(medianOf(runs, at))
		case Percentiles:
			f.Set(reflect.ValueOf(medianPercentiles(runs, func(r *Result) Percentiles { return at(r).Interface().(Percentiles) })))
		}
	}
	out.StageLatencyMS = nil
	for stage := range runs[0].StageLatencyMS {
		if out.StageLatencyMS == nil {
			out.StageLatencyMS = map[string]Percentiles{}
		}
		out.StageLatencyMS[stage] = medianPercentiles(runs, func(r *Result) Percentiles { return r.StageLatencyMS[stage] })
	}
	out.QueryLatencyByRateMS = medianByRate(runs, func(r *Result) []Percentiles { return r.QueryLatencyByRateMS })
	out.BaselineQueryLatencyByRateMS = medianByRate(runs, func(r *Result) []Percentiles { return r.BaselineQueryLatencyByRateMS })
	out.Ratios = map[string]float64{}
	for k := range runs[0].Ratios {
		out.Ratios[k] = median(runs, func(r *Result) float64 { return r.Ratios[k] })
	}
	out.judge()
	out.Notes = append(slices.Clone(runs[0].Notes), fmt.Sprintf("every figure and ratio is the median of %d runs (each on a fresh embedded broker); \"runs\" holds each run's figures.", len(runs)))
	return &out
}

// medianByRate is the median at each rate of runs measured at the same rates.
func medianByRate(runs []*Result, by func(*Result) []Percentiles) []Percentiles {
	var out []Percentiles
	for i := range by(runs[0]) {
		out = append(out, medianPercentiles(runs, func(r *Result) Percentiles { return by(r)[i] }))
	}
	return out
}

func medianOf(runs []*Result, at func(*Result) reflect.Value) reflect.Value {
	m := median(runs, func(r *Result) float64 {
		f := at(r)
		if f.CanFloat() {
			return f.Float()
		}
		return float64(f.Int())
	})
	f := at(runs[0])
	if f.CanFloat() {
		return reflect.ValueOf(m).Convert(f.Type())
	}
	return reflect.ValueOf(int64(m + 0.5)).Convert(f.Type())
}

func medianPercentiles(runs []*Result, p func(*Result) Percentiles) Percentiles {
	return Percentiles{
		P50:     median(runs, func(r *Result) float64 { return p(r).P50 }),
		P99:     median(runs, func(r *Result) float64 { return p(r).P99 }),
		P999:    median(runs, func(r *Result) float64 { return p(r).P999 }),
		Samples: int(median(runs, func(r *Result) float64 { return float64(p(r).Samples) }) + 0.5),
		RateEPS: median(runs, func(r *Result) float64 { return p(r).RateEPS }),
	}
}

func median(runs []*Result, f func(*Result) float64) float64 {
	vs := make([]float64, len(runs))
	for i, r := range runs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}
