namespace HybridServing.Contracts.Metrics;

/// <summary>Metric names per engine kind: names are data, not code.</summary>
public sealed record EngineMetricNames(
    string Running,
    string Waiting,
    string KvCacheUsage,
    string? LoraRequestsInfo)
{
    /// <summary>Proposed upstream, not merged: <c>{adapter_name, level="gpu"|"cpu", pinned}</c> per resident adapter.
    /// Null for engines without it; readers must treat residency as unknown then.</summary>
    public string? LoraAdapterLoaded { get; init; }

    /// <summary>vLLM's <c>vllm:engine_sleep_state{sleep_state="awake"|...}</c>, present only with <c>--enable-sleep-mode</c>.</summary>
    public string? SleepState { get; init; }

    public static readonly EngineMetricNames Vllm = new(
        "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:lora_requests_info")
    {
        LoraAdapterLoaded = "vllm:lora_adapter_loaded",
        SleepState = "vllm:engine_sleep_state",
    };

    public static readonly EngineMetricNames SgLang = new(
        "sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage", null);
}

/// <summary>An engine's load as read from its <c>/metrics</c>.</summary>
public sealed record EngineLoadSnapshot(
    double Running,
    double Waiting,
    double KvCacheUsage,
    int? MaxLoras,
    IReadOnlyList<string> RunningAdapters,
    IReadOnlyList<string> WaitingAdapters)
{
    public static readonly EngineLoadSnapshot Empty = new(0, 0, 0, null, [], []);

    /// <summary>Adapter name to "gpu" or "cpu" from <c>vllm:lora_adapter_loaded</c>; null when the engine does not
    /// expose that metric (then residency is unknown, not empty).</summary>
    public IReadOnlyDictionary<string, string>? Residency { get; init; }

    /// <summary>True when the engine reports it is in sleep mode (its <c>awake</c> series is 0); it must not be sent inference.</summary>
    public bool Sleeping { get; init; }

    /// <summary>
    /// Builds a snapshot from scraped samples. The one place that applies vLLM's rule for
    /// <c>lora_requests_info</c>: every older label set stays exposed, so the series with the
    /// highest value (the newest timestamp) is the current one.
    /// </summary>
    public static EngineLoadSnapshot From(IReadOnlyList<MetricSample> samples, EngineMetricNames names)
    {
        double running = 0, waiting = 0, kv = 0;
        MetricSample? lora = null;
        Dictionary<string, string>? residency = null;
        var sleeping = false;
        foreach (var s in samples)
        {
            if (names.SleepState is not null && s.Name == names.SleepState)
            {
                if (s.Label("sleep_state") == "awake") sleeping = s.Value == 0;
                continue;
            }
            if (names.LoraAdapterLoaded is not null && s.Name == names.LoraAdapterLoaded)
            {
                residency ??= new Dictionary<string, string>(StringComparer.Ordinal);
                if (s.Value > 0 && s.Label("adapter_name") is { } adapter && s.Label("level") is { } level
                    && (level == "gpu" || !residency.ContainsKey(adapter)))
                    residency[adapter] = level;
                continue;
            }
            if (s.Name == names.Running) running += s.Value;
            else if (s.Name == names.Waiting) waiting += s.Value;
            else if (s.Name == names.KvCacheUsage) kv = Math.Max(kv, s.Value);
            else if (names.LoraRequestsInfo is not null && s.Name == names.LoraRequestsInfo && (lora is null || s.Value > lora.Value))
                lora = s;
        }
        if (lora is null) return new EngineLoadSnapshot(running, waiting, kv, null, [], []) { Residency = residency, Sleeping = sleeping };
        return new EngineLoadSnapshot(running, waiting, kv,
            int.TryParse(lora.Label("max_lora"), out var max) ? max : null,
            SplitList(lora.Label("running_lora_adapters")),
            SplitList(lora.Label("waiting_lora_adapters"))) { Residency = residency, Sleeping = sleeping };
    }

    private static string[] SplitList(string? value) =>
        string.IsNullOrEmpty(value) ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
