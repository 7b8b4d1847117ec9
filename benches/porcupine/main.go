// Times Porcupine (v1.3.0) on Porcupine's test data, for quorate's
// `make bench-check`. Prints `name milliseconds` lines: jepsen_total,
// kv_partitioned_total, kv_c10-ok_unpartitioned, kv_c10-bad_unpartitioned.
// Each figure is the median of 5 runs of the check alone (parsing excluded),
// the same measure as benches/check.rs.
//
// Usage: go run . PATH/TO/testdata/porcupine [KV_FILE...] (more kv files,
// each timed partitioned as kv_file_NAME).
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

const repeats = 5

// Register (etcd) model: the state is the value, or unset.
type registerInput struct {
	op   int // 0 read, 1 write, 2 cas
	arg1 int
	arg2 int
}

type registerOutput struct {
	ok      bool // a cas succeeded
	exists  bool // a read found a value
	value   int
	unknown bool // indeterminate
}

const unset = -1 << 40

var registerModel = porcupine.Model{
	Init: func() interface{} { return unset },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(int)
		in := input.(registerInput)
		out := output.(registerOutput)
		switch in.op {
		case 0:
			ok := out.unknown || (!out.exists && st == unset) || (out.exists && st == out.value)
			return ok, st
		case 1:
			return true, in.arg1
		default:
			next := st
			if st == in.arg1 {
				next = in.arg2
			}
			ok := out.unknown || (st == in.arg1) == out.ok
			return ok, next
		}
	},
	Equal: func(a, b interface{}) bool { return a.(int) == b.(int) },
	Hash:  func(state interface{}) uint64 { return uint64(state.(int)) },
}

var (
	logLine = regexp.MustCompile(`jepsen\.util - (\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*)$`)
	casArgs = regexp.MustCompile(`^\[(-?\d+) (-?\d+)\]$`)
)

func parseEtcdLog(path string) ([]porcupine.Event, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var events []porcupine.Event
	open := map[int]int{} // process -> operation id
	var openOrder []int
	id := 0
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		match := logLine.FindStringSubmatch(scanner.Text())
		if match == nil {
			continue
		}
		process, _ := strconv.Atoi(match[1])
		kind, f, value := match[2], match[3], match[4]
		switch kind {
		case "invoke":
			in := registerInput{}
			switch f {
			case "write":
				in.op = 1
				in.arg1, _ = strconv.Atoi(value)
			case "cas":
				in.op = 2
				args := casArgs.FindStringSubmatch(value)
				if args == nil {
					return nil, fmt.Errorf("%s: bad cas %q", path, value)
				}
				in.arg1, _ = strconv.Atoi(args[1])
				in.arg2, _ = strconv.Atoi(args[2])
			}
			events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.CallEvent, Value: in, Id: id})
			open[process] = id
			openOrder = append(openOrder, process)
			id++
		case "info":
			// Indeterminate: returns at the end of the history, below.
			if f == "read" {
				matchID := open[process]
				delete(open, process)
				events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.ReturnEvent, Value: registerOutput{unknown: true}, Id: matchID})
			}
		default:
			matchID, ok := open[process]
			if !ok {
				return nil, fmt.Errorf("%s: completion without invocation", path)
			}
			delete(open, process)
			out := registerOutput{ok: kind == "ok"}
			if f == "read" {
				if value != "nil" {
					out.exists = true
					out.value, _ = strconv.Atoi(value)
				}
			}
			events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.ReturnEvent, Value: out, Id: matchID})
		}
	}
	for _, process := range openOrder {
		if matchID, ok := open[process]; ok {
			delete(open, process)
			events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.ReturnEvent, Value: registerOutput{unknown: true}, Id: matchID})
		}
	}
	return events, scanner.Err()
}

// Key-value model, partitioned by key or whole.
type kvInput struct {
	op    int // 0 get, 1 put, 2 append
	key   string
	value string
}

type kvOutput struct{ value string }

func kvStep(st string, in kvInput, out kvOutput) (bool, string) {
	switch in.op {
	case 0:
		return out.value == st, st
	case 1:
		return true, in.value
	default:
		return true, st + in.value
	}
}

var kvModel = porcupine.Model{
	PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
		byKey := map[string][]porcupine.Event{}
		keyOf := map[int]string{}
		var keys []string
		for _, event := range history {
			key := ""
			if event.Kind == porcupine.CallEvent {
				key = event.Value.(kvInput).key
				keyOf[event.Id] = key
			} else {
				key = keyOf[event.Id]
			}
			if _, seen := byKey[key]; !seen {
				keys = append(keys, key)
			}
			byKey[key] = append(byKey[key], event)
		}
		var parts [][]porcupine.Event
		for _, key := range keys {
			parts = append(parts, byKey[key])
		}
		return parts
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return kvStep(state.(string), input.(kvInput), output.(kvOutput))
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
	Hash:  func(state interface{}) uint64 { return hashString(state.(string)) },
}

// FNV-1a: Porcupine v1.3.0 uses a model's Hash to skip most Equal calls in
// its cache, so each model here gives one, for Porcupine's best time.
func hashString(text string) uint64 {
	hash := uint64(14695981039346656037)
	for i := 0; i < len(text); i++ {
		hash ^= uint64(text[i])
		hash *= 1099511628211
	}
	return hash
}

var kvWholeModel = porcupine.Model{
	Init: func() interface{} { return map[string]string{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(map[string]string)
		in := input.(kvInput)
		ok, value := kvStep(st[in.key], in, output.(kvOutput))
		if !ok || in.op == 0 {
			return ok, st
		}
		next := make(map[string]string, len(st)+1)
		for key, value := range st {
			next[key] = value
		}
		next[in.key] = value
		return true, next
	},
	Equal: func(a, b interface{}) bool {
		x, y := a.(map[string]string), b.(map[string]string)
		if len(x) != len(y) {
			return false
		}
		for key, value := range x {
			if other, ok := y[key]; !ok || other != value {
				return false
			}
		}
		return true
	},
	// Order-independent: the sum of each key's and value's hash together.
	Hash: func(state interface{}) uint64 {
		var sum uint64
		for key, value := range state.(map[string]string) {
			sum += hashString(key) ^ (hashString(value) * 31)
		}
		return sum
	},
}

var kvLine = regexp.MustCompile(`^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), :key "(.*)", :value (nil|"(.*)")\}$`)

func parseKv(path string) ([]porcupine.Event, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var events []porcupine.Event
	open := map[int]int{}
	id := 0
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		match := kvLine.FindStringSubmatch(scanner.Text())
		if match == nil {
			continue
		}
		process, _ := strconv.Atoi(match[1])
		kind, f, key, value := match[2], match[3], match[4], match[6]
		if kind == "invoke" {
			in := kvInput{key: key, value: value}
			switch f {
			case "put":
				in.op = 1
			case "append":
				in.op = 2
			}
			events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.CallEvent, Value: in, Id: id})
			open[process] = id
			id++
			continue
		}
		matchID, ok := open[process]
		if !ok {
			return nil, fmt.Errorf("%s: completion without invocation", path)
		}
		delete(open, process)
		events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.ReturnEvent, Value: kvOutput{value: value}, Id: matchID})
	}
	return events, scanner.Err()
}

func median(histories [][]porcupine.Event, model porcupine.Model) (float64, int) {
	var times []float64
	linearizable := 0
	for run := 0; run < repeats; run++ {
		linearizable = 0
		start := time.Now()
		for _, history := range histories {
			if porcupine.CheckEvents(model, history) {
				linearizable++
			}
		}
		times = append(times, float64(time.Since(start).Microseconds())/1000)
	}
	sort.Float64s(times)
	return times[repeats/2], linearizable
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go run . PATH/TO/testdata/porcupine [KV_FILE...]")
		os.Exit(2)
	}
	data := os.Args[1]
	logs, _ := filepath.Glob(filepath.Join(data, "jepsen", "*.log"))
	sort.Strings(logs)
	var jepsen [][]porcupine.Event
	for _, path := range logs {
		events, err := parseEtcdLog(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		jepsen = append(jepsen, events)
	}
	kv := map[string][]porcupine.Event{}
	names := []string{"c01-ok", "c01-bad", "c10-ok", "c10-bad"}
	var kvAll [][]porcupine.Event
	for _, name := range names {
		events, err := parseKv(filepath.Join(data, "kv", name+".txt"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		kv[name] = events
		kvAll = append(kvAll, events)
	}
	millis, linearizable := median(jepsen, registerModel)
	fmt.Fprintf(os.Stderr, "porcupine jepsen: %d files, %d linearizable\n", len(jepsen), linearizable)
	fmt.Printf("jepsen_total %.2f\n", millis)
	millis, _ = median(kvAll, kvModel)
	fmt.Printf("kv_partitioned_total %.2f\n", millis)
	for _, name := range []string{"c10-ok", "c10-bad"} {
		millis, _ = median([][]porcupine.Event{kv[name]}, kvWholeModel)
		fmt.Printf("kv_%s_unpartitioned %.2f\n", name, millis)
	}
	// More kv files (QUORATE_BENCH_KV_FILES), each partitioned.
	for _, path := range os.Args[2:] {
		events, err := parseKv(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		millis, _ = median([][]porcupine.Event{events}, kvModel)
		fmt.Printf("kv_file_%s %.2f\n", filepath.Base(path), millis)
	}
}
