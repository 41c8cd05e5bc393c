package experiments

import (
	"fmt"

	"github.com/mem1lab/mem1lab/core"
)

// PreviewPrompt renders the exact text the first turn of task sends under cfg:
// the raw Qwen prefix in completions mode, the rendered chat messages in chat
// mode (cfg's template file, or the built-in template).
func PreviewPrompt(cfg RunConfig, task core.Task) (string, error) {
	acfg, err := agentConfig(cfg)
	if err != nil {
		return "", err
	}
	acfg, err = acfg.Normalized(len(task.Objectives))
	if err != nil {
		return "", err
	}
	c := core.Context{Prompt: acfg.Template.RenderWith(task, acfg.Tags)}
	switch cfg.Mode {
	case ModeChat:
		return RenderChatMessages(ChatMessages("", c)), nil
	case ModeCompletions:
		return RenderQwenPrefix("", c), nil
	default:
		return "", fmt.Errorf("mode %q: want %q or %q", cfg.Mode, ModeCompletions, ModeChat)
	}
}
