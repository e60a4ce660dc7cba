using System.Globalization;
using System.Text.Json;
using HybridServing.Contracts.Metrics;

namespace HybridServing.Autoscaler.Signals;

/// <summary>One series of an instant query's answer.</summary>
internal sealed record PrometheusSeries(IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// Reads the load signals from Prometheus's HTTP API (<c>GET /api/v1/query</c>, instant vectors), one
/// PromQL query per signal (<see cref="PrometheusQueries"/>). Every query that fails, answers an error
/// or answers nothing is named in the returned <c>missing</c> list, which freezes the pool.
/// </summary>
internal sealed class PrometheusSource(HttpClient http, PrometheusOptions options)
{
    private static readonly HashSet<string> LoraInfoLabels = ["__name__", "max_lora", "running_lora_adapters", "waiting_lora_adapters"];

    public Uri Url => options.Url!;

    public async Task<(PoolLoad? Load, IReadOnlyList<string> Missing)> ReadPoolAsync(string selector, CancellationToken ct)
    {
        var q = options.Queries;
        var missing = new List<string>();
        await CheckUpAsync(q.EnginesUp.Replace("$pool", selector, StringComparison.Ordinal), missing, ct);
        var running = await ScalarAsync(q.Running.Replace("$pool", selector, StringComparison.Ordinal), missing, ct);
        var waiting = await ScalarAsync(q.Waiting.Replace("$pool", selector, StringComparison.Ordinal), missing, ct);
        var kv = await ScalarAsync(q.KvCacheUsage.Replace("$pool", selector, StringComparison.Ordinal), missing, ct);
        var lora = await SeriesAsync(q.LoraInfo.Replace("$pool", selector, StringComparison.Ordinal), missing, ct);
        if (missing.Count > 0) return (null, missing);
        // One engine per label set without the info labels; EngineLoadSnapshot keeps the newest series of each.
        var engines = lora!.GroupBy(s => string.Join(',', s.Labels.Where(l => !LoraInfoLabels.Contains(l.Key)).OrderBy(l => l.Key, StringComparer.Ordinal)))
            .Select(g => EngineLoadSnapshot.From([.. g.Select(s => new MetricSample(EngineMetricNames.Vllm.LoraRequestsInfo!, s.Labels, s.Value))], EngineMetricNames.Vllm));
        return (PoolLoad.FromEngines(engines) with { Running = running, Waiting = waiting, MaxKvCacheUsage = kv }, missing);
    }

    public async Task<(GatewayReading? Reading, IReadOnlyList<string> Missing)> ReadGatewaysAsync(CancellationToken ct)
    {
        var q = options.Queries;
        var missing = new List<string>();
        await CheckUpAsync(Gateway(q.GatewaysUp), missing, ct);
        var held = await ScalarAsync(Gateway(q.HeldRequests), missing, ct);
        var refused = await ScalarAsync(Gateway(q.OverflowRefusals), missing, ct);
        return (missing.Count == 0 ? new GatewayReading(held, refused) : null, missing);
    }

    private string Gateway(string query) => query.Replace("$gateway", options.GatewaySelector, StringComparison.Ordinal);

    /// <summary>Every series must be 1: an empty answer means Prometheus scrapes nothing there, a 0 a target it cannot reach.</summary>
    private async Task CheckUpAsync(string query, List<string> missing, CancellationToken ct)
    {
        var series = await SeriesAsync(query, missing, ct);
        if (series is null) return;
        if (series.Count == 0) missing.Add($"Prometheus query '{query}': no series (is the target scraped?)");
        foreach (var down in series.Where(s => s.Value != 1))
            missing.Add($"Prometheus query '{query}': target {down.Labels.GetValueOrDefault("instance", "?")} is down");
    }

    /// <summary>The single sample of a value query; 0 and a <c>missing</c> entry when it failed, answered nothing or several series.</summary>
    private async Task<double> ScalarAsync(string query, List<string> missing, CancellationToken ct)
    {
        var series = await SeriesAsync(query, missing, ct);
        if (series is null) return 0;
        if (series.Count == 1 && double.IsFinite(series[0].Value)) return series[0].Value;
        missing.Add(series.Count == 1 ? $"Prometheus query '{query}': the value is {series[0].Value}"
            : series.Count == 0 ? $"Prometheus query '{query}': no series"
            : $"Prometheus query '{query}': {series.Count} series, expected one (aggregate it with sum or max)");
        return 0;
    }

    private async Task<IReadOnlyList<PrometheusSeries>?> SeriesAsync(string query, List<string> missing, CancellationToken ct)
    {
        try { return await QueryAsync(query, ct); }
        catch (SignalUnavailableException e) { missing.Add(e.Message); return null; }
    }

    /// <summary>An instant query; throws <see cref="SignalUnavailableException"/> naming the query when Prometheus fails or refuses it.</summary>
    public async Task<IReadOnlyList<PrometheusSeries>> QueryAsync(string query, CancellationToken ct)
    {
        var url = new Uri(options.Url!, "api/v1/query?query=" + Uri.EscapeDataString(query));
        try
        {
            using var response = await http.GetAsync(url, ct);
            using var doc = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(ct), cancellationToken: ct);
            var root = doc.RootElement;
            if (!response.IsSuccessStatusCode || root.GetProperty("status").GetString() != "success")
                throw new SignalUnavailableException($"Prometheus query '{query}': HTTP {(int)response.StatusCode} " +
                    (root.TryGetProperty("error", out var error) ? error.GetString() : ""));
            var data = root.GetProperty("data");
            var value = data.GetProperty("result");
            return data.GetProperty("resultType").GetString() switch
            {
                "vector" => [.. value.EnumerateArray().Select(s => new PrometheusSeries(
                    s.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "", StringComparer.Ordinal),
                    Sample(s.GetProperty("value"))))],
                "scalar" => [new PrometheusSeries(new Dictionary<string, string>(), Sample(value))],
                var other => throw new SignalUnavailableException($"Prometheus query '{query}': a {other} answer, expected an instant vector"),
            };
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException
                                  && !ct.IsCancellationRequested)
        {
            throw new SignalUnavailableException($"Prometheus query '{query}': {e.Message}", e);
        }
    }

    /// <summary>A sample is <c>[unixTime, "value"]</c>; the value is a string so that NaN and ±Inf survive JSON.</summary>
    private static double Sample(JsonElement pair) => double.Parse(pair[1].GetString()!, NumberStyles.Float, CultureInfo.InvariantCulture);
}
