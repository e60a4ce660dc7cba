using System.Net;
using System.Text.Json;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

/// <summary>
/// Scale-down drains over the HTTP API (<c>/v1/engines/{name}/drain</c>) against in-test sidecars: the
/// drained engine's adapters are placed elsewhere, it keeps serving them until they are LOADED there
/// (make before break), it is sent no desired set meanwhile, and undraining makes it placeable again.
/// </summary>
public sealed class DrainEndToEndTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("cp-drain");
    private readonly List<FakeSidecar> _sidecars = [];
    private ControlPlaneHost _host = null!;

    private string Manifests => _dir.Combine("manifests");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Manifests);
        foreach (var name in new[] { "a-lora", "b-lora" }) TestAdapters.Write(_dir.Combine("manifests", "adapters"), name, 8);
        for (var i = 0; i < 2; i++)
        {
            var s = new FakeSidecar($"engine-{i}", $"node-{i}", maxLoras: 2, maxCpuLoras: 2);
            // Reported as a laptop sidecar reports its engine (nothing listens there; only the drain-by-URL lookup reads it).
            s.Info.EngineUrl = $"http://127.0.0.1:{18000 + i}/";
            await s.StartAsync();
            _sidecars.Add(s);
        }
        Manifests_.Write(Manifests, "a.yaml", Manifests_.Adapter("a", "./adapters", adapters: ["a-lora"]));
        Manifests_.Write(Manifests, "b.yaml", Manifests_.Adapter("b", "./adapters", adapters: ["b-lora"]));
        _host = await ControlPlaneHost.StartAsync(Manifests, _sidecars);
        await ControlPlaneHost.WaitUntilAsync(() => _sidecars.SelectMany(s => s.Loaded).Order().SequenceEqual(["a-lora", "b-lora"]), "both adapters are loaded");
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        foreach (var s in _sidecars) await s.DisposeAsync();
        _dir.Dispose();
    }

    private async Task<JsonElement> Drain(HttpMethod method, string engine, HttpStatusCode expected)
    {
        using var response = await _host.Http.SendAsync(new HttpRequestMessage(method, $"/v1/engines/{engine}/drain"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{method} drain {engine}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private async Task<JsonElement> DrainByUrl(HttpMethod method, string? engineUrl, HttpStatusCode expected)
    {
        var query = engineUrl is null ? "" : "?engineUrl=" + Uri.EscapeDataString(engineUrl);
        using var response = await _host.Http.SendAsync(new HttpRequestMessage(method, "/v1/engines/drain" + query));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{method} drain {engineUrl}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private async Task<JsonElement> WaitDrain(string engine, Func<JsonElement, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        JsonElement last;
        do
        {
            last = await Drain(HttpMethod.Get, engine, HttpStatusCode.OK);
            if (condition(last)) return last;
            await Task.Delay(100);
        }
        while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"drain of {engine} never {what}; last: {last}");
    }

    private static IReadOnlyList<string> Pending(JsonElement drain) => [.. drain.GetProperty("pending").EnumerateArray().Select(p => p.GetString()!)];

    private async Task<(bool Draining, IReadOnlyList<string> LoadedOn)> Route(string engine, string adapter)
    {
        using var routes = await _host.GetJsonAsync("/v1/routes");
        var draining = routes.RootElement.GetProperty("engines").EnumerateArray().Single(e => e.GetProperty("name").GetString() == engine).GetProperty("draining").GetBoolean();
        var loadedOn = routes.RootElement.GetProperty("adapters").EnumerateArray().Single(a => a.GetProperty("name").GetString() == adapter)
            .GetProperty("endpoints").EnumerateArray().Where(e => e.GetProperty("residency").GetString() == "RESIDENCY_LOADED")
            .Select(e => e.GetProperty("engine").GetString()!).Order(StringComparer.Ordinal).ToList();
        return (draining, loadedOn);
    }

    [Fact]
    public async Task A_drained_engine_serves_until_its_adapters_are_loaded_elsewhere_and_is_placeable_again_once_undrained()
    {
        var drained = _sidecars.Single(s => s.Loaded.Contains("a-lora"));
        var other = _sidecars.Single(s => s != drained);
        var held = drained.Loaded;
        // The other engine cannot load the drained engine's adapters yet: the move is in progress.
        foreach (var a in held) other.FailAdapters[a] = "not yet";
        var callsBefore = drained.EnsureCalls.Count;

        var started = await Drain(HttpMethod.Post, drained.Name, HttpStatusCode.Accepted);
        Assert.True(started.GetProperty("draining").GetBoolean());
        var moving = await WaitDrain(drained.Name, d => Pending(d).SequenceEqual(held), "listed its adapters as pending");
        Assert.False(moving.GetProperty("done").GetBoolean());
        var (draining, loadedOn) = await Route(drained.Name, "a-lora");
        Assert.True(draining);
        Assert.Equal([drained.Name], loadedOn);     // still the holder the gateways use meanwhile

        // The moves succeed: the drain is done, the adapters are LOADED elsewhere, and the drained engine was
        // never told to unload them (it finishes what it runs and goes with them).
        other.FailAdapters.Clear();
        var done = await WaitDrain(drained.Name, d => d.GetProperty("done").GetBoolean(), "finished");
        Assert.Empty(Pending(done));
        Assert.All(held, a => Assert.Contains(a, other.Loaded));
        Assert.Equal(callsBefore, drained.EnsureCalls.Count);
        Assert.Equal(held, drained.Loaded);
        using (var status = await _host.GetJsonAsync("/v1/status"))
        {
            var engine = status.RootElement.GetProperty("engines").EnumerateArray().Single(e => e.GetProperty("name").GetString() == drained.Name);
            Assert.True(engine.GetProperty("drain").GetProperty("done").GetBoolean());
        }

        // Undrained (woken), it is placeable again: draining the other engine moves everything back onto it.
        var ended = await Drain(HttpMethod.Delete, drained.Name, HttpStatusCode.OK);
        Assert.False(ended.GetProperty("draining").GetBoolean());
        Assert.False((await Route(drained.Name, "a-lora")).Draining);
        await Drain(HttpMethod.Post, other.Name, HttpStatusCode.Accepted);
        await WaitDrain(other.Name, d => d.GetProperty("done").GetBoolean(), "finished");
        Assert.Equal(["a-lora", "b-lora"], drained.Loaded);
        foreach (var adapter in new[] { "a-lora", "b-lora" }) Assert.Contains(drained.Name, (await Route(other.Name, adapter)).LoadedOn);
    }

    [Fact]
    public async Task An_unknown_engine_is_a_404_naming_it()
    {
        foreach (var method in new[] { HttpMethod.Post, HttpMethod.Get, HttpMethod.Delete })
        {
            var error = (await Drain(method, "engine-9", HttpStatusCode.NotFound)).GetProperty("error");
            Assert.Equal("NotFound", error.GetProperty("reason").GetString());
            Assert.Equal("no engine named 'engine-9' is declared (see /v1/status for the engines' names).", error.GetProperty("message").GetString());
        }
    }

    [Fact]
    public async Task A_drain_by_engine_url_matches_loopback_names_and_trailing_slashes_canonically()
    {
        // engine-1 reports http://127.0.0.1:18001/; an autoscaler configured with localhost (Aspire's endpoint URLs) finds it.
        var started = await DrainByUrl(HttpMethod.Post, "http://localhost:18001", HttpStatusCode.Accepted);
        Assert.Equal("engine-1", started.GetProperty("engine").GetString());
        Assert.True(started.GetProperty("draining").GetBoolean());
        Assert.True((await Drain(HttpMethod.Get, "engine-1", HttpStatusCode.OK)).GetProperty("draining").GetBoolean());
        Assert.False((await Drain(HttpMethod.Get, "engine-0", HttpStatusCode.OK)).GetProperty("draining").GetBoolean());

        var polled = await DrainByUrl(HttpMethod.Get, "HTTP://[::1]:18001/", HttpStatusCode.OK);
        Assert.Equal("engine-1", polled.GetProperty("engine").GetString());
        Assert.True(polled.GetProperty("draining").GetBoolean());

        var ended = await DrainByUrl(HttpMethod.Delete, "http://127.0.0.1:18001", HttpStatusCode.OK);
        Assert.Equal("engine-1", ended.GetProperty("engine").GetString());
        Assert.False(ended.GetProperty("draining").GetBoolean());
    }

    [Fact]
    public async Task A_drain_by_an_unknown_or_malformed_engine_url_names_it()
    {
        foreach (var method in new[] { HttpMethod.Post, HttpMethod.Get, HttpMethod.Delete })
        {
            var unknown = (await DrainByUrl(method, "http://localhost:18009/", HttpStatusCode.NotFound)).GetProperty("error");
            Assert.Equal("NotFound", unknown.GetProperty("reason").GetString());
            Assert.Equal("no engine reports engineUrl 'http://localhost:18009/' (known: engine-0=http://127.0.0.1:18000/, engine-1=http://127.0.0.1:18001/).",
                unknown.GetProperty("message").GetString());
            foreach (var bad in new[] { null, "engine-1", "ftp://127.0.0.1:18001" })
            {
                var error = (await DrainByUrl(method, bad, HttpStatusCode.BadRequest)).GetProperty("error");
                Assert.Equal($"engineUrl: '{bad}' is not an absolute http(s) URL (e.g. ?engineUrl=http://127.0.0.1:8000).", error.GetProperty("message").GetString());
            }
        }
        foreach (var engine in new[] { "engine-0", "engine-1" })
            Assert.False((await Drain(HttpMethod.Get, engine, HttpStatusCode.OK)).GetProperty("draining").GetBoolean());
    }
}
