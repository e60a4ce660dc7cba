namespace HybridServing.Autoscaler.Signals;

/// <summary>
/// <c>Autoscaler:Prometheus</c>: read the load signals from a Prometheus through its HTTP query API
/// (PromQL instant queries, as KEDA's Prometheus scaler does) instead of scraping the engines' and
/// gateways' <c>/metrics</c> directly. In every query <c>$pool</c> becomes the pool's
/// <c>PrometheusSelector</c> and <c>$gateway</c> the <see cref="GatewaySelector"/> (label matchers).
/// </summary>
public sealed class PrometheusOptions
{
    /// <summary>The Prometheus HTTP root (its <c>/api/v1/query</c> is used). Unset: no Prometheus.</summary>
    public Uri? Url { get; set; }
    /// <summary>Label matchers picking the gateways' series, e.g. <c>job="gateway"</c>.</summary>
    public string GatewaySelector { get; set; } = "job=\"gateway\"";
    public PrometheusQueries Queries { get; set; } = new();
}

/// <summary>
/// <c>Autoscaler:Prometheus:Queries:&lt;Signal&gt;</c>. The <c>*Up</c> queries guard liveness: an empty
/// result or a series at 0 (a target Prometheus cannot scrape) freezes the pool. The value queries must
/// answer exactly one sample (wrap them in <c>sum</c>/<c>max</c>); empty or failing, they freeze the pool
/// too. <see cref="LoraInfo"/> is the one whose empty answer is data: no awake engine with LoRA.
/// </summary>
public sealed class PrometheusQueries
{
    public string EnginesUp { get; set; } = "up{$pool}";
    public string Running { get; set; } = "sum(vllm:num_requests_running{$pool})";
    public string Waiting { get; set; } = "sum(vllm:num_requests_waiting{$pool})";
    public string KvCacheUsage { get; set; } = "max(vllm:kv_cache_usage_perc{$pool})";
    /// <summary>The raw <c>vllm:lora_requests_info</c> series of the pool's awake engines; one engine per label set
    /// without the info labels, and per engine the newest series counts (as on <c>/metrics</c>).</summary>
    public string LoraInfo { get; set; } = "vllm:lora_requests_info{$pool} unless on(job, instance) (vllm:engine_sleep_state{$pool,sleep_state=\"awake\"} == 0)";
    public string GatewaysUp { get; set; } = "up{$gateway}";
    /// <summary>The gateways' series appear at their first event, hence <c>or vector(0)</c>; <see cref="GatewaysUp"/> tells a silent gateway apart.</summary>
    public string HeldRequests { get; set; } = "sum(hybridserving_gateway_held_requests{$gateway}) or vector(0)";
    /// <summary>A counter total; the Autoscaler uses its increase since the previous tick. The gateway exports it as
    /// <c>hybridserving_gateway_overflows</c> (no <c>_total</c>: its counters come through prometheus-net's meter adapter);
    /// the name matcher takes either spelling.</summary>
    public string OverflowRefusals { get; set; } = "sum({__name__=~\"hybridserving_gateway_overflows(_total)?\",$gateway,outcome=\"refused\"}) or vector(0)";
}
