using System.Text.Json;
using HybridServing.Contracts.Metrics;

namespace HybridServing.Autoscaler.Signals;

/// <summary>One engine's <c>/metrics</c> read, or why it could not be.</summary>
internal sealed record EngineReading(Uri Engine, EngineLoadSnapshot? Load, string? Error)
{
    public bool Ok => Load is not null;
}

/// <summary>What the ControlPlane's <c>/v1/status</c> says about engines and LoRA placement.</summary>
internal sealed record ControlPlaneReading(IReadOnlyList<StatusEngine> Engines, int AdaptersShortOfReplicas);

internal sealed record StatusEngine(string Name, Uri? EngineUrl, IReadOnlyDictionary<string, string> Labels, bool Connected);

/// <summary>What a gateway's <c>/metrics</c> says: requests it holds for lack of an awake engine, and refused overflows (a counter).</summary>
internal sealed record GatewayReading(double HeldRequests, double OverflowRefusalsTotal);

/// <summary>Reads every signal over real HTTP. Each call answers or throws <see cref="SignalUnavailableException"/> naming the source.</summary>
internal sealed class SignalSources(HttpClient http)
{
    public const string GatewayHeldMetric = "hybridserving_gateway_held_requests";
    public const string GatewayOverflowsMetric = "hybridserving_gateway_overflows";

    public async Task<EngineReading> ReadEngineAsync(Uri engine, CancellationToken ct)
    {
        try
        {
            var text = await http.GetStringAsync(new Uri(engine, "metrics"), ct);
            return new EngineReading(engine, EngineLoadSnapshot.From(PrometheusText.Parse(text), EngineMetricNames.Vllm), null);
        }
        catch (Exception e) when ((Unreachable(e) || e is FormatException) && !ct.IsCancellationRequested)
        {
            return new EngineReading(engine, null, e.Message);
        }
    }

    public async Task<ControlPlaneReading> ReadControlPlaneAsync(Uri controlPlane, CancellationToken ct)
    {
        using var doc = await GetJsonAsync(new Uri(controlPlane, "v1/status"), "ControlPlane /v1/status", ct);
        var root = doc.RootElement;
        var engines = new List<StatusEngine>();
        if (root.TryGetProperty("engines", out var list) && list.ValueKind == JsonValueKind.Array)
            foreach (var e in list.EnumerateArray())
            {
                var labels = new Dictionary<string, string>(StringComparer.Ordinal);
                if (e.TryGetProperty("labels", out var l) && l.ValueKind == JsonValueKind.Object)
                    foreach (var p in l.EnumerateObject()) labels[p.Name] = p.Value.GetString() ?? "";
                var url = e.TryGetProperty("engineUrl", out var u) && u.ValueKind == JsonValueKind.String && Uri.TryCreate(u.GetString(), UriKind.Absolute, out var parsed) ? parsed : null;
                engines.Add(new StatusEngine(e.GetProperty("name").GetString() ?? "", url, labels,
                    e.TryGetProperty("connected", out var c) && c.ValueKind == JsonValueKind.True));
            }
        var shortOf = 0;
        if (root.TryGetProperty("adapters", out var adapters) && adapters.ValueKind == JsonValueKind.Array)
            foreach (var a in adapters.EnumerateArray())
                if (a.TryGetProperty("shortfall", out var s) && s.ValueKind == JsonValueKind.Object) shortOf++;
        return new ControlPlaneReading(engines, shortOf);
    }

    public async Task<GatewayReading> ReadGatewayAsync(Uri gateway, CancellationToken ct)
    {
        string text;
        try { text = await http.GetStringAsync(new Uri(gateway, "metrics"), ct); }
        catch (Exception e) when (Unreachable(e) && !ct.IsCancellationRequested)
        {
            throw new SignalUnavailableException($"gateway {gateway} /metrics: {e.Message}", e);
        }
        double held = 0, refused = 0;
        foreach (var s in PrometheusText.Parse(text))
        {
            if (s.Name == GatewayHeldMetric) held += s.Value;
            else if ((s.Name == GatewayOverflowsMetric || s.Name == GatewayOverflowsMetric + "_total") && s.Label("outcome") == "refused") refused += s.Value;
        }
        return new GatewayReading(held, refused);
    }

    private async Task<JsonDocument> GetJsonAsync(Uri url, string source, CancellationToken ct)
    {
        try
        {
            using var response = await http.GetAsync(url, ct);
            if (!response.IsSuccessStatusCode) throw new SignalUnavailableException($"{source}: HTTP {(int)response.StatusCode}");
            return await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(ct), cancellationToken: ct);
        }
        catch (Exception e) when ((Unreachable(e) || e is JsonException) && !ct.IsCancellationRequested)
        {
            throw new SignalUnavailableException($"{source}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The source could not be reached or answered incompletely. Besides HttpRequestException and timeouts,
    /// SocketsHttpHandler lets a bare SocketException (ENOTCONN from the socket's RemoteEndPoint) escape when a
    /// connection is reset as it is accepted, as a Service proxy without ready endpoints does, and a body cut
    /// mid-read is an IOException: both are a missing signal, not a reason for the Autoscaler host to stop.
    /// </summary>
    private static bool Unreachable(Exception e) => e is HttpRequestException or TaskCanceledException or System.Net.Sockets.SocketException or IOException;
}

internal sealed class SignalUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
