package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// GokaLogger adapts slog to goka's Logger (and sarama's StdLogger).
type GokaLogger struct{ L *slog.Logger }

func (g GokaLogger) Print(v ...any) { g.log(fmt.Sprint(v...)) }
func (g GokaLogger) Println(v ...any) {
	g.log(strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
func (g GokaLogger) Printf(format string, v ...any) { g.log(fmt.Sprintf(format, v...)) }

func (g GokaLogger) log(msg string) {
	if g.L == nil {
		return
	}
	g.L.Log(context.Background(), slog.LevelDebug, strings.TrimSpace(msg))
}
