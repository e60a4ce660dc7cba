using System.Collections.Concurrent;
using System.Net.Http.Headers;
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
/// The Autoscaler on the real stack: the AppHost started through Aspire.Hosting.Testing with two
/// engines and the Autoscaler (minimum one awake). The idle engine above the minimum is drained and put to
/// sleep; load through the gateway wakes it; the load gone, it drains and sleeps again — visible at the
/// engine's <c>GET /is_sleeping</c>, the Autoscaler's <c>/v1/status</c> and its
/// <c>hybridserving_autoscaler_desired_engines</c> — and every request sent meanwhile is answered in full.
/// The Autoscaler's windows are shortened through its own configuration keys given to the AppHost, which
/// passes every <c>Autoscaler:*</c> key on to the resource (its <c>/v1/status</c> shows the policy in force).
/// </summary>
[Collection(AppHostStack.Name)]
public sealed class AutoscalerEndToEndTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string ApiKey = "sw-tenant-key";
    private const string Adapter = "sw-alpha";
    private const string EngineHeader = "x-hybridserving-engine";
    private readonly TempDirectory _dir = new("autoscale-e2e");
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

    /// <summary>Windows of seconds instead of a minute, so a scale-down and a scale-up each take a few seconds.</summary>
    private static readonly Dictionary<string, string> Windows = new()
    {
        ["Autoscaler:Interval"] = "00:00:00.500",
        ["Autoscaler:Pools:engine:TargetConcurrencyPerEngine"] = "2",
        ["Autoscaler:Pools:engine:StableWindow"] = "00:00:03",
        ["Autoscaler:Pools:engine:PanicWindow"] = "00:00:01",
        ["Autoscaler:Pools:engine:ScaleDownDelay"] = "00:00:02",
        ["Autoscaler:Pools:engine:ScaleDownStabilization"] = "00:00:02",
        ["Autoscaler:Pools:engine:DrainTimeout"] = "00:00:20",
    };

    private sealed record Answer(string Model, int Status, string? Engine, int Tokens, int Expected, string Body);

    [Fact]
    public async Task An_idle_engine_sleeps_wakes_under_gateway_load_and_sleeps_again_without_losing_a_request()
    {
        var adapters = _dir.Combine("adapters");
        TestAdapters.Write(adapters, Adapter, rank: 8);
        var manifests = Directory.CreateDirectory(_dir.Combine("manifests")).FullName;
        await File.WriteAllTextAsync(Path.Combine(manifests, "sw.yaml"), $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: sw
              namespace: default
            spec:
              baseModel: {TestAdapters.TinyModel}
              adapterSource:
                type: local
                repository: {adapters}
                pattern: "sw-*"
              deploymentConfig:
                replicas:
                  min: 1
                  max: 1
            """);
        var block = Ports.GetFreeBlock(14);
        string[] args = [
            "--manifests", manifests, "--adapter-root", adapters, "--engines", "2", "--autoscaler-min-engines", "1",
            "--base-model", TestAdapters.TinyModel,
            "--gateway-port", Ports.GetFree().ToString(), "--controlplane-port", Ports.GetFree().ToString(),
            "--controlplane-grpc-port", Ports.GetFree().ToString(), "--autoscaler-port", Ports.GetFree().ToString(),
            "--engine-port-base", block.ToString(), "--sidecar-port-base", (block + 2).ToString(),
            "--state-dir", _dir.Combine("state")];
        // About 15 s of autoscaling after the stack is up; starting a dozen processes is most of the rest (over a minute on a loaded machine).
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(240));
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(args, timeout.Token);
        appHost.Configuration["Parameters:dev-api-key"] = ApiKey;
        foreach (var (key, value) in Windows) appHost.Configuration[key] = value;
        _app = await appHost.BuildAsync(timeout.Token);
        await _app.StartAsync(timeout.Token);
        foreach (var name in new[] { "engine-0", "engine-1", "engine-0-sidecar", "engine-1-sidecar", "controlplane", "gateway", "autoscaler" })
            await _app.ResourceNotifications.WaitForResourceHealthyAsync(name, timeout.Token);
        var gateway = _app.GetEndpoint("gateway", "http");
        var autoscaler = _app.GetEndpoint("autoscaler", "http");

        // The keys given to the AppHost reached the Autoscaler: its policy in force is the shortened one.
        var first = await Eventually.ValueAsync(() => StatusAsync(autoscaler, timeout.Token), timeout.Token);
        var policy = first["policy"]!;
        Assert.Equal("00:00:03", (string?)policy["stableWindow"]);
        Assert.Equal("00:00:01", (string?)policy["panicWindow"]);
        Assert.Equal("00:00:02", (string?)policy["scaleDownDelay"]);
        Assert.Equal("00:00:20", (string?)policy["drainTimeout"]);
        Assert.Equal(2.0, (double)policy["targetConcurrencyPerEngine"]!);
        Assert.Equal(1, (int)policy["minEngines"]!);   // from --autoscaler-min-engines
        Assert.Equal(2, (int)policy["maxEngines"]!);   // the pool's engines
        Assert.Equal("Sleep", (string?)policy["actuator"]);

        // 1. Idle: engine-1 (the last listed) is drained through the ControlPlane, then sleeps; engine-0 stays awake.
        var engine0 = _app.GetEndpoint("engine-0", "http");
        var engine1 = _app.GetEndpoint("engine-1", "http");
        await Eventually.ValueAsync(async () => await IsSleepingAsync(engine1, timeout.Token) ? "asleep" : null, timeout.Token);
        Assert.False(await IsSleepingAsync(engine0, timeout.Token));
        var slept = await RecentAsync(autoscaler, "slept", timeout.Token);
        output.WriteLine($"idle: {slept["action"]} — {slept["reason"]}");
        Assert.Equal(1, (int)slept["desired"]!);
        // Drained first: the ControlPlane found the engine by the URL the Autoscaler knows it by (no "not drained" note).
        Assert.Equal($"slept {engine1} (level 1)", (string?)slept["action"]);
        await Eventually.ValueAsync(async () => (await StatusAsync(autoscaler, timeout.Token)) is { } s && (int)s["current"]! == 1 && (int)s["desired"]! == 1 ? s : null, timeout.Token);
        Assert.Equal(1, await DesiredMetricAsync(autoscaler, timeout.Token));
        Assert.True(await EngineSleepingInControlPlaneAsync("engine-1", timeout.Token));

        // 2. Load through the gateway (six clients, target two per engine): engine-1 is woken and undrained, then serves.
        var answers = new ConcurrentQueue<Answer>();
        using (var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token))
        {
            var clients = Enumerable.Range(0, 6).Select(i => ClientAsync(gateway, i % 3 == 0 ? Adapter : TestAdapters.TinyModel, 48, answers, stopLoad.Token)).ToList();
            var woke = await RecentAsync(autoscaler, "woke", timeout.Token);
            output.WriteLine($"load: {woke["action"]} — {woke["reason"]}");
            Assert.Equal(2, (int)woke["desired"]!);
            Assert.Equal($"woke {engine1} and undrained engine-1", (string?)woke["action"]);
            Assert.False(await IsSleepingAsync(engine1, timeout.Token));
            Assert.Equal(2, await DesiredMetricAsync(autoscaler, timeout.Token));
            // The woken engine takes requests from the gateway.
            await Eventually.ValueAsync(() => Task.FromResult(answers.Any(a => a.Engine == "engine-1") ? "served" : null), timeout.Token);
            await stopLoad.CancelAsync();
            await Task.WhenAll(clients);
        }
        var woken = answers.Count;

        // 3. The load gone but one client left (concurrency 1 wants one engine): engine-1 drains and sleeps again
        // while requests keep arriving; they all are answered.
        using (var stopTrickle = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token))
        {
            var trickle = ClientAsync(gateway, Adapter, 8, answers, stopTrickle.Token);
            await Eventually.ValueAsync(async () => await IsSleepingAsync(engine1, timeout.Token) ? "asleep" : null, timeout.Token);
            var during = answers.Count;
            // A few more requests after the sleep, served by the engine left awake.
            await Eventually.ValueAsync(() => Task.FromResult(answers.Count >= during + 3 ? "more" : null), timeout.Token);
            await stopTrickle.CancelAsync();
            await trickle;
        }
        var again = await RecentAsync(autoscaler, "slept", timeout.Token, skip: 1);
        output.WriteLine($"idle again: {again["action"]} — {again["reason"]}");
        Assert.Equal(1, await DesiredMetricAsync(autoscaler, timeout.Token));
        Assert.False(await IsSleepingAsync(engine0, timeout.Token));

        // No request lost: every one sent while engines slept, woke and slept again was answered 200 in full.
        output.WriteLine($"{answers.Count} requests ({woken} under load), by engine: " +
            string.Join(", ", answers.GroupBy(a => a.Engine).Select(g => $"{g.Key} {g.Count()}")));
        var failed = answers.Where(a => a.Status != 200 || a.Tokens != a.Expected).ToList();
        Assert.True(failed.Count == 0, "requests lost: " + string.Join("; ", failed.Take(5).Select(f => $"{f.Model} {f.Status} {f.Tokens}/{f.Expected} {f.Body}")));
        Assert.Contains(answers, a => a.Model == Adapter && a.Engine == "engine-0");
        Assert.True(answers.Count > woken, "no requests during the second scale-down");
    }

    /// <summary>Sends requests one after another until stopped; each answer is recorded.</summary>
    private async Task ClientAsync(Uri gateway, string model, int maxTokens, ConcurrentQueue<Answer> answers, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"))
            {
                Content = new StringContent(JsonSerializer.Serialize(new
                {
                    model,
                    messages = new[] { new { role = "user", content = "Tell me about autoscaling" } },
                    max_tokens = maxTokens,
                    ignore_eos = true,
                }), Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
            // Not cancelled by the stop: a request started is always seen to its answer.
            using var response = await _http.SendAsync(request, CancellationToken.None);
            var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
            var tokens = response.IsSuccessStatusCode ? (int?)JsonNode.Parse(body)?["usage"]?["completion_tokens"] ?? -1 : -1;
            answers.Enqueue(new Answer(model, (int)response.StatusCode,
                response.Headers.TryGetValues(EngineHeader, out var engines) ? engines.Single() : null, tokens, maxTokens, body));
        }
    }

    /// <summary>The Autoscaler's recent action (its <c>/v1/status</c> keeps the last ones) starting with <paramref name="prefix"/>, after <paramref name="skip"/> earlier ones.</summary>
    private async Task<JsonNode> RecentAsync(Uri autoscaler, string prefix, CancellationToken ct, int skip = 0) =>
        await Eventually.ValueAsync(async () => (await StatusAsync(autoscaler, ct))?["recent"]!.AsArray()
            .Where(a => ((string?)a!["action"])!.StartsWith(prefix, StringComparison.Ordinal)).Skip(skip).FirstOrDefault(), ct);

    /// <summary>The engine pool's entry in the Autoscaler's <c>/v1/status</c>, null before its first decision.</summary>
    private async Task<JsonNode?> StatusAsync(Uri autoscaler, CancellationToken ct)
    {
        var pools = JsonNode.Parse(await _http.GetStringAsync(new Uri(autoscaler, "/v1/status"), ct))!["pools"]!.AsArray();
        return pools.SingleOrDefault(p => (string?)p!["pool"] == "engine");
    }

    private async Task<bool> IsSleepingAsync(Uri engine, CancellationToken ct) =>
        (bool)JsonNode.Parse(await _http.GetStringAsync(new Uri(engine, "/is_sleeping"), ct))!["is_sleeping"]!;

    private async Task<bool> EngineSleepingInControlPlaneAsync(string engine, CancellationToken ct)
    {
        var status = JsonNode.Parse(await _http.GetStringAsync(new Uri(_app!.GetEndpoint("controlplane", "http"), "/v1/status"), ct))!;
        return (bool)status["engines"]!.AsArray().Single(e => (string?)e!["name"] == engine)!["sleeping"]!;
    }

    private async Task<int> DesiredMetricAsync(Uri autoscaler, CancellationToken ct)
    {
        var text = await _http.GetStringAsync(new Uri(autoscaler, "/metrics"), ct);
        var line = text.Split('\n').Single(l => l.StartsWith("hybridserving_autoscaler_desired_engines{pool=\"engine\"} ", StringComparison.Ordinal));
        return (int)double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
