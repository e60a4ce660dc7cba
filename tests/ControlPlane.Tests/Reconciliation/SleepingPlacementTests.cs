using System.Net;
using System.Text.Json;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

/// <summary>
/// An engine its sidecar reports asleep (vLLM sleep mode) is no placement target, even without a drain (a
/// ControlPlane restarted after the autoscaler slept it): its adapters are placed on awake engines, new ones
/// and overflow loads never land on it, it keeps what it holds and stays a (sleeping) route for it, and once
/// awake it is a target again.
/// </summary>
public sealed class SleepingPlacementTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("cp-sleeping");
    private readonly List<FakeSidecar> _sidecars = [];
    private ControlPlaneHost _host = null!;

    private string Manifests => _dir.Combine("manifests");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Manifests);
        foreach (var name in new[] { "a-lora", "b-lora", "c-lora" }) TestAdapters.Write(_dir.Combine("manifests", "adapters"), name, 8);
        for (var i = 0; i < 2; i++)
        {
            var s = new FakeSidecar($"engine-{i}", $"node-{i}", maxLoras: 4, maxCpuLoras: 4);
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

    private async Task<IReadOnlyList<string>> LoadedRoutes(string adapter)
    {
        using var routes = await _host.GetJsonAsync("/v1/routes");
        return [.. routes.RootElement.GetProperty("adapters").EnumerateArray().Single(a => a.GetProperty("name").GetString() == adapter)
            .GetProperty("endpoints").EnumerateArray().Where(e => e.GetProperty("residency").GetString() == "RESIDENCY_LOADED")
            .Select(e => e.GetProperty("engine").GetString()!).Order(StringComparer.Ordinal)];
    }

    [Fact]
    public async Task A_sleeping_engine_gets_no_new_adapters_or_moves_and_is_a_target_again_once_awake()
    {
        var asleep = _sidecars.Single(s => s.Loaded.Contains("a-lora"));
        var awake = _sidecars.Single(s => s != asleep);
        var held = asleep.Loaded;
        var callsBefore = asleep.EnsureCalls.Count;

        asleep.Sleeping = true;
        // Its adapters are placed on the awake engine; it is not told to unload them (it holds them asleep).
        await ControlPlaneHost.WaitUntilAsync(() => held.All(awake.Loaded.Contains), "the sleeping engine's adapters are loaded on the awake one");
        using (var status = await _host.GetJsonAsync("/v1/status"))
        {
            var engines = status.RootElement.GetProperty("engines").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
            Assert.True(engines[asleep.Name].GetProperty("sleeping").GetBoolean());
            Assert.False(engines[awake.Name].GetProperty("sleeping").GetBoolean());
            Assert.Empty(engines[asleep.Name].GetProperty("desired").EnumerateArray());
        }
        // A newly declared adapter lands on the awake engine only.
        Manifests_.Write(Manifests, "c.yaml", Manifests_.Adapter("c", "./adapters", adapters: ["c-lora"]));
        await ControlPlaneHost.WaitUntilAsync(() => awake.Loaded.Contains("c-lora"), "c-lora is loaded on the awake engine");
        Assert.Equal(callsBefore, asleep.EnsureCalls.Count);
        Assert.Equal(held, asleep.Loaded);
        // Its held adapters stay routes (the gateway sees them asleep), next to the awake holder.
        foreach (var a in held) Assert.Equal(new[] { asleep.Name, awake.Name }.Order(StringComparer.Ordinal), await LoadedRoutes(a));
        // An overflow load onto it is refused, saying why.
        using (var overflow = await _host.Http.PostAsync($"/v1/adapters/c-lora/load?engine={asleep.Name}", null))
        {
            var body = await overflow.Content.ReadAsStringAsync();
            Assert.True(overflow.StatusCode == HttpStatusCode.Conflict, body);
            Assert.Contains($"engine '{asleep.Name}' is asleep (sleep mode): nothing new is placed on it.", JsonDocument.Parse(body).RootElement.GetProperty("message").GetString());
        }

        // Awake again, it is a target: draining the other engine places everything on it.
        asleep.Sleeping = false;
        using (await _host.Http.PostAsync($"/v1/engines/{awake.Name}/drain", null)) { }
        await ControlPlaneHost.WaitUntilAsync(() => asleep.Loaded.SequenceEqual(["a-lora", "b-lora", "c-lora"]), "every adapter is loaded on the woken engine");
        Assert.True(asleep.EnsureCalls.Count > callsBefore);
    }
}
