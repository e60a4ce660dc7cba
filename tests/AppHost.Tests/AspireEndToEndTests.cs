using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using HybridServing.TestKit;
using TempDirectory = HybridServing.TestKit.TempDirectory;
using Xunit.Abstractions;

namespace HybridServing.AppHost.Tests;

/// <summary>
/// Tier 3: the real AppHost started through Aspire.Hosting.Testing (DCP runs every component as a
/// process, the Aspire dashboard collects their telemetry), driven the way a user drives it.
/// </summary>
[Collection(AppHostStack.Name)]
public sealed class AspireEndToEndTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string EngineHeader = "x-hybridserving-engine";
    private const string DashboardApiKey = "e2e-dashboard-key";
    private const string ApiKey = "e2e-tenant-key";
    private readonly TempDirectory _dir = new("e2e");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private DistributedApplication? _app;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        _http.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task An_adapter_is_discovered_placed_loaded_served_and_unloaded_when_its_manifest_goes()
    {
        var adapters = _dir.Combine("adapters");
        TestAdapters.Write(adapters, "e2e-alpha", rank: 8);
        TestAdapters.Write(adapters, "e2e-beta", rank: 16);
        TestAdapters.Write(adapters, "other", rank: 8);
        var manifests = Directory.CreateDirectory(_dir.Combine("manifests")).FullName;
        var manifest = Path.Combine(manifests, "e2e.yaml");
        await File.WriteAllTextAsync(manifest, $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: e2e
              namespace: default
            spec:
              baseModel: {TestAdapters.TinyModel}
              adapterSource:
                type: local
                repository: {adapters}
                pattern: "e2e-*"
              deploymentConfig:
                replicas:
                  min: 1
                  max: 1
            """);
        TestAdapters.Write(adapters, "cold-start", rank: 8);
        await File.WriteAllTextAsync(Path.Combine(manifests, "cold.yaml"), $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: cold
              namespace: default
            spec:
              baseModel: {TestAdapters.TinyModel}
              adapterSource:
                type: local
                repository: {adapters}
                pattern: "cold-*"
              deploymentConfig:
                loadOnStartup: false
            """);
        // The production-stack proposal's example shape with a local repository outside every allowed root: refused in status
        // at once, naming the option that allows it, while the other LoraAdapter is served.
        var outside = _dir.Combine("elsewhere");
        TestAdapters.Write(outside, "e2e-outside", rank: 8);
        await File.WriteAllTextAsync(Path.Combine(manifests, "outside.yaml"), $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: outside
              namespace: default
            spec:
              baseModel: {TestAdapters.TinyModel}
              adapterSource:
                type: local
                repository: {outside}
                pattern: "e2e-*"
              deploymentConfig:
                loadOnStartup: true
              schedulingConfig:
                priority: 10
                preemptionPolicy: "LowerPriority"
            """);

        // Ports are fixed by the AppHost (the README's 8080/8081); a test takes free ones.
        var block = Ports.GetFreeBlock(14);
        string[] args = [
            "--manifests", manifests, "--adapter-root", adapters, "--engines", "2", "--autoscaler-min-engines", "2", "--base-model", TestAdapters.TinyModel,
            "--gateway-port", Ports.GetFree().ToString(), "--controlplane-port", Ports.GetFree().ToString(),
            "--controlplane-grpc-port", Ports.GetFree().ToString(), "--autoscaler-port", Ports.GetFree().ToString(),
            "--engine-port-base", block.ToString(), "--sidecar-port-base", (block + 2).ToString(),
            "--state-dir", _dir.Combine("state")];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            new DistributedApplicationTestingBuilderOptions { EnableDashboard = true }, args, timeout.Token);
        appHost.Configuration["AppHost:DashboardApiKey"] = DashboardApiKey;
        // The development tenant's key is the Aspire parameter dev-api-key (default dev-key).
        appHost.Configuration["Parameters:dev-api-key"] = ApiKey;
        _app = await appHost.BuildAsync(timeout.Token);
        await _app.StartAsync(timeout.Token);
        foreach (var name in new[] { "engine-0", "engine-1", "engine-0-sidecar", "engine-1-sidecar", "controlplane", "gateway", "autoscaler" })
            await _app.ResourceNotifications.WaitForResourceHealthyAsync(name, timeout.Token);

        var gateway = _app.GetEndpoint("gateway", "http");
        var status = new Uri(_app.GetEndpoint("controlplane", "http"), "/apis/hybridserving.io/v1alpha1/namespaces/default/loraadapters/e2e");
        var resource = await Eventually.ValueAsync(async () =>
        {
            var json = JsonNode.Parse(await _http.GetStringAsync(status, timeout.Token))!;
            return (string?)json["status"]?["phase"] == "Ready" ? json : null;
        }, timeout.Token);
        Assert.Equal(["e2e-alpha", "e2e-beta"], resource["status"]!["loadedAdapters"]!.AsArray().Select(n => (string)n!).Order());
        var refused = await Eventually.ValueAsync(async () =>
        {
            var json = await _http.GetStringAsync(new Uri(status, "outside"), timeout.Token);
            return json.Contains("PathNotAllowed", StringComparison.Ordinal) ? JsonNode.Parse(json) : null;
        }, timeout.Token);
        Assert.NotEqual("Loading", (string?)refused["status"]!["phase"]);
        Assert.Contains("AllowedLocalRoots", refused.ToJsonString());

        // The gateway lists the base model and the loaded adapters with the base as parent.
        var models = await SendAsync(HttpMethod.Get, new Uri(gateway, "/v1/models"), null, timeout.Token);
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        var cards = JsonNode.Parse(await models.Content.ReadAsStringAsync(timeout.Token))!["data"]!.AsArray();
        Assert.Contains(cards, c => (string?)c!["id"] == TestAdapters.TinyModel);
        Assert.Contains(cards, c => (string?)c!["id"] == "e2e-alpha" && (string?)c!["parent"] == TestAdapters.TinyModel);
        Assert.DoesNotContain(cards, c => (string?)c!["id"] == "other");

        // Non-streaming: served by an engine that holds the adapter.
        var response = await SendAsync(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"),
            new { model = "e2e-alpha", messages = new[] { new { role = "user", content = "Hello there" } }, max_tokens = 8 }, timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal("e2e-alpha", (string?)JsonNode.Parse(body)!["model"]);
        var engine = Assert.Single(response.Headers.GetValues(EngineHeader));
        await AssertEngineHoldsAsync(engine, "e2e-alpha", timeout.Token);

        // The request is one trace across processes in the Aspire dashboard: the gateway's span and the
        // engine's server span (continued from the traceparent the gateway forwarded) share a trace id.
        await AssertOneTraceAsync("gateway", engine, timeout.Token);
        await AssertLlmRequestSpanAsync(engine, timeout.Token);

        // A cold start is one trace too: gateway → ControlPlane RequestLoad and reconcile → the sidecar's load → engine.
        var cold = await SendAsync(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"),
            new { model = "cold-start", messages = new[] { new { role = "user", content = "Wake up" } }, max_tokens = 4 }, timeout.Token);
        Assert.True(cold.StatusCode == HttpStatusCode.OK, await cold.Content.ReadAsStringAsync(timeout.Token));
        var coldEngine = Assert.Single(cold.Headers.GetValues(EngineHeader));
        await AssertOneTraceAsync("gateway", "controlplane", timeout.Token);
        await AssertOneTraceAsync("gateway", $"{coldEngine}-sidecar", timeout.Token);

        // Streaming: server-sent events passed through, ending with [DONE].
        var stream = await SendAsync(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"),
            new { model = "e2e-beta", stream = true, messages = new[] { new { role = "user", content = "Stream please" } }, max_tokens = 8 }, timeout.Token);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        var events = await stream.Content.ReadAsStringAsync(timeout.Token);
        Assert.Contains("\"model\":\"e2e-beta\"", events);
        Assert.EndsWith("data: [DONE]\n\n", events);
        await AssertEngineHoldsAsync(Assert.Single(stream.Headers.GetValues(EngineHeader)), "e2e-beta", timeout.Token);

        // The dashboard and alerts in k8s/monitoring query only metrics these components really export.
        await AssertMonitoringMetricsExportedAsync(timeout.Token);

        // Removing the manifest unloads the adapters everywhere; the gateway then answers 404.
        File.Delete(manifest);
        var notFound = await Eventually.ValueAsync(async () =>
        {
            var r = await SendAsync(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"),
                new { model = "e2e-alpha", messages = new[] { new { role = "user", content = "Hi" } } }, timeout.Token);
            return r.StatusCode == HttpStatusCode.NotFound ? await r.Content.ReadAsStringAsync(timeout.Token) : null;
        }, timeout.Token);
        var error = JsonNode.Parse(notFound)!["error"]!;
        Assert.Equal("NotFoundError", (string?)error["type"]);
        Assert.Equal("model", (string?)error["param"]);
        await Eventually.ValueAsync(async () =>
        {
            foreach (var e in new[] { "engine-0", "engine-1" })
            {
                var list = await _http.GetStringAsync(new Uri(_app.GetEndpoint(e, "http"), "/v1/models"), timeout.Token);
                if (list.Contains("e2e-alpha", StringComparison.Ordinal)) return (string?)null;
            }
            return "gone";
        }, timeout.Token);
    }

    private async Task AssertOneTraceAsync(string from, string to, CancellationToken cancellationToken)
    {
        var dashboard = await _app!.GetDashboardUrlAsync(cancellationToken) ?? throw new InvalidOperationException("the dashboard is not running");
        await Eventually.ValueAsync(async () =>
        {
            var a = await TraceIdsAsync(dashboard, from, cancellationToken);
            var b = await TraceIdsAsync(dashboard, to, cancellationToken);
            output.WriteLine($"traces: {from} {a.Count}, {to} {b.Count}, shared {a.Intersect(b).Count()}");
            return a.Overlaps(b) ? "shared" : null;
        }, cancellationToken);
    }

    /// <summary>The engine continues the trace the way vLLM does: an llm_request span with vLLM's gen_ai.* attributes.</summary>
    private async Task AssertLlmRequestSpanAsync(string engine, CancellationToken cancellationToken)
    {
        var dashboard = await _app!.GetDashboardUrlAsync(cancellationToken) ?? throw new InvalidOperationException("the dashboard is not running");
        var engineSpans = await SpansAsync(dashboard, engine, cancellationToken);
        Assert.Contains("\"llm_request\"", engineSpans);
        Assert.Contains("gen_ai.usage.completion_tokens", engineSpans);
        Assert.Contains("gen_ai.latency.time_to_first_token", engineSpans);
    }

    private async Task<string> SpansAsync(Uri dashboard, string resource, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(dashboard, $"/api/telemetry/spans?resource={resource}&limit=500"));
        request.Headers.Add("x-api-key", DashboardApiKey);
        using var response = await _http.SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound) return "";
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"dashboard telemetry API: {(int)response.StatusCode} {text}");
        return text;
    }

    /// <summary>Trace ids of the spans <paramref name="resource"/> sent to the dashboard (its telemetry API, OTLP/JSON).</summary>
    private async Task<HashSet<string>> TraceIdsAsync(Uri dashboard, string resource, CancellationToken cancellationToken)
    {
        var text = await SpansAsync(dashboard, resource, cancellationToken);
        var ids = new HashSet<string>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            CollectTraceIds(JsonNode.Parse(line), ids);
        return ids;
    }

    private static void CollectTraceIds(JsonNode? node, HashSet<string> ids)
    {
        switch (node)
        {
            case JsonObject o:
                if (o["traceId"] is JsonValue v && v.TryGetValue<string>(out var id)) ids.Add(id);
                foreach (var (_, child) in o) CollectTraceIds(child, ids);
                break;
            case JsonArray a:
                foreach (var child in a) CollectTraceIds(child, ids);
                break;
        }
    }

    private async Task AssertMonitoringMetricsExportedAsync(CancellationToken cancellationToken)
    {
        var exported = new HashSet<string>();
        foreach (var name in new[] { "engine-0", "engine-1", "engine-0-sidecar", "engine-1-sidecar", "controlplane", "gateway", "autoscaler" })
            exported.UnionWith(MonitoringMetrics.SampleNames(await _http.GetStringAsync(new Uri(_app!.GetEndpoint(name, "http"), "/metrics"), cancellationToken)));
        var missing = MonitoringMetrics.Expressions()
            .SelectMany(e => MonitoringMetrics.NamesIn(e.Expr).Where(n => !exported.Contains(n)).Select(n => $"{n} ({e.Where})"))
            .Distinct().ToList();
        Assert.True(missing.Count == 0, "k8s/monitoring queries metrics no component exports: " + string.Join("; ", missing));
    }

    private async Task AssertEngineHoldsAsync(string engine, string adapter, CancellationToken cancellationToken)
    {
        var url = _app!.GetEndpoint(engine, "http");
        var list = JsonNode.Parse(await _http.GetStringAsync(new Uri(url, "/v1/models"), cancellationToken))!["data"]!.AsArray();
        Assert.Contains(list, c => (string?)c!["id"] == adapter);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, object? body, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(method, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        if (body is not null)
            request.Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        return await _http.SendAsync(request, cancellationToken);
    }
}
