using HybridServing.Contracts.Metrics;

namespace HybridServing.Contracts.Tests;

public sealed class PrometheusTextTests
{
    private const string Scrape = """
        # HELP vllm:num_requests_running Number of requests in model execution batches.
        # TYPE vllm:num_requests_running gauge
        vllm:num_requests_running{engine="0",model_name="m"} 3.0
        vllm:num_requests_waiting{engine="0",model_name="m"} 7
        vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
        vllm:lora_requests_info{max_lora="4",running_lora_adapters="a,b",waiting_lora_adapters=""} 1.7e9
        vllm:lora_requests_info{max_lora="4",running_lora_adapters="c",waiting_lora_adapters="d, e"} 1.700000005e9
        vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} 1.6e9
        vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 12
        weird{label="quote \" and \\ backslash"} NaN
        broken{label="unterminated} 1
        """;

    [Fact]
    public void Parses_names_labels_values_and_skips_malformed_lines()
    {
        var samples = PrometheusText.Parse(Scrape);
        Assert.Equal(8, samples.Count);
        Assert.Equal(3.0, samples[0].Value);
        Assert.Equal("m", samples[0].Label("model_name"));
        Assert.Equal("+Inf", samples[6].Label("le"));
        Assert.Equal("quote \" and \\ backslash", samples[7].Label("label"));
        Assert.True(double.IsNaN(samples[7].Value));
    }

    [Fact]
    public void Load_takes_the_lora_series_with_the_newest_timestamp()
    {
        var load = EngineLoadSnapshot.From(PrometheusText.Parse(Scrape), EngineMetricNames.Vllm);
        Assert.Equal(3, load.Running);
        Assert.Equal(7, load.Waiting);
        Assert.Equal(0.42, load.KvCacheUsage);
        Assert.Equal(4, load.MaxLoras);
        Assert.Equal(["c"], load.RunningAdapters);
        Assert.Equal(["d", "e"], load.WaitingAdapters);
    }

    [Fact]
    public void An_engine_without_lora_metrics_has_no_adapter_lists()
    {
        var load = EngineLoadSnapshot.From(PrometheusText.Parse("vllm:num_requests_running 1\n"), EngineMetricNames.Vllm);
        Assert.Null(load.MaxLoras);
        Assert.Empty(load.RunningAdapters);
    }

    [Theory]
    [InlineData("", false)]   // no sleep gauge: an engine without sleep mode is awake
    [InlineData("vllm:engine_sleep_state{engine=\"0\",sleep_state=\"awake\"} 1.0\nvllm:engine_sleep_state{engine=\"0\",sleep_state=\"weights_offloaded\"} 0.0\n", false)]
    [InlineData("vllm:engine_sleep_state{engine=\"0\",sleep_state=\"awake\"} 0.0\nvllm:engine_sleep_state{engine=\"0\",sleep_state=\"weights_offloaded\"} 1.0\n", true)]
    public void Sleep_state_is_read_from_the_awake_series(string lines, bool sleeping)
    {
        var load = EngineLoadSnapshot.From(PrometheusText.Parse("vllm:num_requests_running 0\n" + lines), EngineMetricNames.Vllm);
        Assert.Equal(sleeping, load.Sleeping);
    }
}
