using System.Globalization;
using System.Text;
using HybridServing.MockEngine.Lora;
using HybridServing.MockEngine.Performance;
using HybridServing.MockEngine.Serving;
using HybridServing.MockEngine.Sleep;

namespace HybridServing.MockEngine.Metrics;

/// <summary>
/// <c>/metrics</c> in Prometheus text format with vLLM's names, labels and buckets, read from the
/// performance model. Written by hand: vLLM's names contain ':' and its lora_requests_info keeps
/// every old label set, which general-purpose metric libraries do not do.
/// </summary>
internal sealed class VllmMetricsText(
    MockEngineOptions options,
    RealTimeEngineDriver driver,
    LoraAdapterRegistry adapters,
    ZeroLatencyCounters zeroLatency,
    EngineSleepState sleep)
{
    public string Render()
    {
        var sb = new StringBuilder(8192);
        var labels = $"engine=\"0\",model_name=\"{Escape(options.PrimaryName)}\"";
        // Read the registry before taking the driver's lock: loads take them in the other order.
        var loaded = options.ExposeAdapterLoadedMetric ? adapters.List() : [];
        driver.Read(model =>
        {
            var stats = model.Statistics;
            var zl = options.ZeroLatency;
            Gauge(sb, "vllm:num_requests_running", "Number of requests in model execution batches.", labels,
                zl ? Interlocked.Read(ref zeroLatency.InFlight) : model.RunningCount);
            Gauge(sb, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels, zl ? 0 : model.WaitingCount);
            Gauge(sb, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels, zl ? 0 : model.KvCacheUsage);
            if (options.EnableSleepMode) SleepMetrics.Render(sb, labels, sleep.Level);

            if (options.EnableLora)
            {
                sb.Append("# HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge\n");
                foreach (var ((running, waiting), at) in model.LoraInfoSeries.OrderBy(kv => kv.Value))
                {
                    sb.Append("vllm:lora_requests_info{max_lora=\"").Append(options.MaxLoras)
                        .Append("\",running_lora_adapters=\"").Append(Escape(running))
                        .Append("\",waiting_lora_adapters=\"").Append(Escape(waiting)).Append("\"} ")
                        .Append(Number((at - DateTimeOffset.UnixEpoch).TotalSeconds)).Append('\n');
                }
            }

            Counter(sb, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", labels,
                stats.PromptTokens + Interlocked.Read(ref zeroLatency.PromptTokens));
            Counter(sb, "vllm:generation_tokens_total", "Number of generation tokens processed.", labels,
                stats.GenerationTokens + Interlocked.Read(ref zeroLatency.GenerationTokens));
            sb.Append("# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter\n");
            foreach (var reason in new[] { "stop", "length", "abort" })
            {
                var value = stats.SuccessByReason.GetValueOrDefault(reason)
                    + reason switch { "stop" => Interlocked.Read(ref zeroLatency.Stop), "length" => Interlocked.Read(ref zeroLatency.Length), _ => 0 };
                sb.Append("vllm:request_success_total{").Append(labels).Append(",finished_reason=\"").Append(reason).Append("\"} ").Append(Number(value)).Append('\n');
            }
            Counter(sb, "vllm:num_preemptions_total", "Cumulative number of preemption from the engine.", labels, stats.Preemptions);

            Histogram(sb, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", labels, stats.TimeToFirstToken);
            Histogram(sb, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", labels, stats.InterTokenLatency);
            Histogram(sb, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", labels, stats.EndToEndLatency);
            Histogram(sb, "vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", labels, stats.QueueTime);
            Histogram(sb, "vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", labels, stats.PrefillTime);
            Histogram(sb, "vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", labels, stats.DecodeTime);
            Histogram(sb, "vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", labels, stats.InferenceTime);
            Histogram(sb, "vllm:request_prompt_tokens", "Number of prefill tokens processed.", labels, stats.PromptTokensPerRequest);
            Histogram(sb, "vllm:request_generation_tokens", "Number of generation tokens processed.", labels, stats.GenerationTokensPerRequest);

            // Ours, clearly prefixed: what the performance model charged for adapter loads.
            sb.Append("# HELP mockengine:adapter_loads_total Adapter loads the performance model charged, by tier.\n# TYPE mockengine:adapter_loads_total counter\n");
            foreach (var tier in Enum.GetValues<LoadTier>())
                sb.Append("mockengine:adapter_loads_total{").Append(labels).Append(",tier=\"").Append(TierLabel(tier)).Append("\"} ")
                    .Append(Number(stats.AdapterLoadsByTier.GetValueOrDefault(tier))).Append('\n');

            if (options.ExposeAdapterLoadedMetric && options.EnableLora)
            {
                // Proposed upstream (not merged): which adapters are resident where.
                sb.Append("# HELP vllm:lora_adapter_loaded Adapters resident on the GPU or in host memory.\n# TYPE vllm:lora_adapter_loaded gauge\n");
                var gpu = model.GpuAdapters.ToHashSet(StringComparer.Ordinal);
                foreach (var adapter in loaded)
                {
                    var level = gpu.Contains(adapter.Name) ? "gpu" : model.HostAdapters.Contains(adapter.Name) ? "cpu" : null;
                    if (level is null) continue;
                    var pinned = model.Adapter(adapter.Name)?.Pinned == true ? "true" : "false";
                    sb.Append("vllm:lora_adapter_loaded{adapter_name=\"").Append(Escape(adapter.Name)).Append("\",level=\"").Append(level)
                        .Append("\",pinned=\"").Append(pinned).Append("\"} 1\n");
                }
            }
            return 0;
        });
        return sb.ToString();
    }

    private static string TierLabel(LoadTier tier) => tier switch
    {
        LoadTier.HostToGpu => "host",
        LoadTier.LocalDisk => "disk",
        LoadTier.Remote => "remote",
        _ => tier.ToString(),
    };

    private static void Gauge(StringBuilder sb, string name, string help, string labels, double value)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(" gauge\n");
        sb.Append(name).Append('{').Append(labels).Append("} ").Append(Number(value)).Append('\n');
    }

    private static void Counter(StringBuilder sb, string name, string help, string labels, double value)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(" counter\n");
        sb.Append(name).Append('{').Append(labels).Append("} ").Append(Number(value)).Append('\n');
    }

    private static void Histogram(StringBuilder sb, string name, string help, string labels, LatencyHistogram histogram)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(" histogram\n");
        var cumulative = histogram.CumulativeCounts();
        for (var i = 0; i < cumulative.Length; i++)
            sb.Append(name).Append("_bucket{").Append(labels).Append(",le=\"").Append(Number(histogram.UpperBounds[i])).Append("\"} ").Append(Number(cumulative[i])).Append('\n');
        sb.Append(name).Append("_bucket{").Append(labels).Append(",le=\"+Inf\"} ").Append(Number(histogram.Count)).Append('\n');
        sb.Append(name).Append("_count{").Append(labels).Append("} ").Append(Number(histogram.Count)).Append('\n');
        sb.Append(name).Append("_sum{").Append(labels).Append("} ").Append(Number(histogram.Sum)).Append('\n');
    }

    /// <summary>Python's float formatting as prometheus_client writes it (1.0, 0.25, 1.7e+09 → full digits).</summary>
    private static string Number(double value)
    {
        if (double.IsPositiveInfinity(value)) return "+Inf";
        if (value == Math.Floor(value) && Math.Abs(value) < 1e15) return value.ToString("0.0", CultureInfo.InvariantCulture);
        return value.ToString("R", CultureInfo.InvariantCulture);
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
