package usage_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/claude-route/claude-route/usage"
)

// The proxy hands the tap the same bytes it writes to the client; the tap
// never fails, so io.MultiWriter never stops the copy because of it.
func ExampleSSETap() {
	upstream := strings.NewReader("event: message_start\n" +
		`data: {"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":100,"output_tokens":1}}}` + "\n\n" +
		"event: message_delta\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}` + "\n\n" +
		"event: message_stop\n" + `data: {"type":"message_stop"}` + "\n\n")
	var client strings.Builder // stands for the flushed http.ResponseWriter

	tap := usage.NewSSETap()
	if _, err := io.Copy(io.MultiWriter(&client, tap), upstream); err != nil {
		panic(err)
	}
	u, ok := tap.Usage()
	fmt.Println(ok, tap.Done(), u.InputTokens, u.OutputTokens, u.CacheReadInputTokens, u.Total())
	// Output: true true 25 15 100 140
}
