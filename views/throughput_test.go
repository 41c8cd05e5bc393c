package views

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mem1lab/mem1lab/experiments"
)

func TestThroughputText(t *testing.T) {
	assert.Empty(t, throughputText(experiments.Progress{}))
	pr := experiments.Progress{StoreWaitShare: 0.034, Endpoints: []experiments.EndpointStats{
		{Name: "gpu-a", InFlight: 62}, {Name: "gpu-b", InFlight: 60}}}
	assert.Equal(t, "\nin flight: gpu-a 62, gpu-b 60 · store wait 3%", throughputText(pr))
}
