package core

// memoryWords are the phrases of the memory policies' sub-call prompts that
// depend on the task family: the goal the agent works towards (a QA task's
// numbered questions, a WebShop instruction) and how its steps and
// observations are named. The QA phrases are the prompts' original text.
type memoryWords struct {
	goal string // the questions or the instruction, ending in a newline

	summariserIntro, summariserSteps, summariserAsk string // summary:K, resum
	memAgentIntro, memAgentPiece, memAgentAsk       string // memagent; memAgentAsk has a %d for the token bound
	extractIntro, extractStep, extractAsk           string // mem0's extractor
	mem0System, amemSystem                          string // the actor's system prompt before the memories
}

var qaMemoryWords = memoryWords{
	summariserIntro: "You keep the working notes of a research agent that answers these questions by searching a corpus:\n",
	summariserSteps: "\nNew steps of the agent (its reasoning, searches and the documents it got back):\n",
	summariserAsk:   "\nWrite the updated notes: keep every fact that helps answer a question, what was searched and what is still unknown. Reply with the notes only.",
	memAgentIntro:   "You read documents piece by piece for someone who must answer these questions:\n",
	memAgentPiece:   "\nThe next piece (the reader's last step and what its search returned):\n",
	memAgentAsk:     "\n\nRewrite the memory so that it holds everything useful for the questions, old and new, in at most %d tokens. Reply with the new memory only.",
	extractIntro:    "An agent is answering these questions by searching a corpus:\n",
	extractStep:     "\nIts latest step and the documents that came back:\n",
	extractAsk:      "\n\nList the standalone facts in this step that could help answer the questions (names, dates, numbers, relations), each one short sentence. ",
	mem0System:      "You are a research agent. Facts you noted in earlier turns, most relevant first:",
	amemSystem:      "You are a research agent. Answer from the task, your latest step and these memories of earlier steps:",
}

var webShopMemoryWords = memoryWords{
	summariserIntro: "You keep the working notes of a shopping agent that follows this instruction on a web store:\n",
	summariserSteps: "\nNew steps of the agent (its reasoning, the actions it took and the pages they led to):\n",
	summariserAsk:   "\nWrite the updated notes: keep what the instruction asks for (item, attributes, options, price limit), the products seen and how well each matches, and what is left to do. Reply with the notes only.",
	memAgentIntro:   "You follow a shopping session page by page for someone who must buy what this instruction asks for:\n",
	memAgentPiece:   "\nThe next piece (the shopper's last step and the page it led to):\n",
	memAgentAsk:     "\n\nRewrite the memory so that it holds everything useful for the purchase, old and new, in at most %d tokens. Reply with the new memory only.",
	extractIntro:    "An agent is shopping on a web store for this instruction:\n",
	extractStep:     "\nIts latest step and the page that came back:\n",
	extractAsk:      "\n\nList the standalone facts in this step that could help make the purchase (products, their attributes, options and prices, what the page offers), each one short sentence. ",
	mem0System:      "You are a shopping agent. Facts you noted in earlier turns, most relevant first:",
	amemSystem:      "You are a shopping agent. Act from the instruction, your latest step and these memories of earlier steps:",
}

// words are the sub-call phrases for the step's task family: WebShop's when
// the step carries an instruction, else QA's with the task's questions.
func (s MemoryStep) words() memoryWords {
	if s.Instruction != "" {
		w := webShopMemoryWords
		w.goal = s.Instruction + "\n"
		return w
	}
	w := qaMemoryWords
	w.goal = questionsText(s.Task)
	return w
}
