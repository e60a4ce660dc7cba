using System.Net;
using System.Text.Json;
using Grpc.Net.Client;
using HybridServing.Contracts.ControlPlane;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

/// <summary>
/// RequestLoad naming an engine (overflow loads) over real gRPC against in-test sidecars: three one-slot
/// engines, each full with one adapter, so placement itself has no room for a second replica of "hot-lora".
/// </summary>
public sealed class OverflowEndToEndTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("cp-overflow");
    private readonly List<FakeSidecar> _sidecars = [];
    private ControlPlaneHost? _host;
    private GrpcChannel? _channel;

    private string Manifests => _dir.Combine("manifests");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Manifests);
        var repo = _dir.Combine("manifests", "adapters");
        foreach (var name in new[] { "hot-lora", "b-lora", "c-lora" }) TestAdapters.Write(repo, name, 8);
        for (var i = 0; i < 3; i++)
        {
            var s = new FakeSidecar($"engine-{i}", $"node-{i}", maxLoras: 1, maxCpuLoras: 1);
            await s.StartAsync();
            _sidecars.Add(s);
        }
        Manifests_.Write(Manifests, "hot.yaml", Manifests_.Adapter("hot", "./adapters", adapters: ["hot-lora"], extraSpec: "  deploymentConfig:\n    replicas: {min: 1, max: 2}\n"));
        Manifests_.Write(Manifests, "b.yaml", Manifests_.Adapter("b", "./adapters", adapters: ["b-lora"]));
        Manifests_.Write(Manifests, "c.yaml", Manifests_.Adapter("c", "./adapters", adapters: ["c-lora"]));
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        if (_host is not null) await _host.DisposeAsync();
        foreach (var s in _sidecars) await s.DisposeAsync();
        _dir.Dispose();
    }

    private FakeSidecar Holder(string adapter) => _sidecars.Single(s => s.Desired.Contains(adapter));

    /// <summary>Starts the control plane and waits until every engine holds its one adapter.</summary>
    private async Task<AdapterRouter.AdapterRouterClient> StartAsync(IDictionary<string, string?>? extra = null)
    {
        _host = await ControlPlaneHost.StartAsync(Manifests, _sidecars, extra: extra);
        await ControlPlaneHost.WaitUntilAsync(() => _sidecars.All(s => s.Loaded.Count == 1) && _sidecars.SelectMany(s => s.Loaded).Distinct().Count() == 3,
            "each engine holds one adapter");
        _channel = GrpcChannel.ForAddress(_host.GrpcUrl);
        return new AdapterRouter.AdapterRouterClient(_channel);
    }

    [Fact]
    public async Task An_overflow_load_adds_the_adapter_to_a_full_engine_without_evicting_and_is_reported_truthfully()
    {
        var router = await StartAsync();
        var holder = Holder("hot-lora");
        var target = Holder("b-lora");
        var third = Holder("c-lora");
        var own = new Dictionary<FakeSidecar, string> { [holder] = "hot-lora", [target] = "b-lora", [third] = "c-lora" };
        var callsBefore = _sidecars.ToDictionary(s => s, s => s.EnsureCalls.Count);

        var granted = await router.RequestLoadAsync(new RequestLoadRequest { Name = "hot-lora", Engine = target.Name });
        Assert.True(granted.Accepted, granted.Message);
        Assert.Equal("Overflow", granted.Reason);

        await ControlPlaneHost.WaitUntilAsync(() => target.Loaded.SequenceEqual(["b-lora", "hot-lora"]), "hot-lora loaded next to b-lora");
        Assert.Equal(["hot-lora"], holder.Desired);
        Assert.Equal(["c-lora"], third.Desired);
        await ControlPlaneHost.WaitUntilAsync(() =>
            router.GetPodsForAdapter(new GetPodsForAdapterRequest { Name = "hot-lora" }).Endpoints.Count(e => e.Residency == Residency.Loaded) == 2,
            "the routing table shows both engines LOADED");
        await _host!.WaitForAsync("hot", a => a.Status?.PodAssignments?.Count == 2 && a.Status.LoadedAdapters?.Contains("hot-lora") == true);
        using (var status = await _host.GetJsonAsync("/v1/status"))
        {
            var hot = status.RootElement.GetProperty("adapters").EnumerateArray().Single(a => a.GetProperty("name").GetString() == "hot-lora");
            Assert.Equal(target.Name, hot.GetProperty("overflow").EnumerateArray().Single().GetProperty("engine").GetString());
        }

        // replicas.max 2 is reached; b-lora's max is 1.
        var beyondMax = await router.RequestLoadAsync(new RequestLoadRequest { Name = "hot-lora", Engine = third.Name });
        Assert.Equal((false, "MaxReplicas"), (beyondMax.Accepted, beyondMax.Reason));
        Assert.Contains("replicas.max", beyondMax.Message);
        Assert.Equal("MaxReplicas", (await router.RequestLoadAsync(new RequestLoadRequest { Name = "b-lora", Engine = holder.Name })).Reason);

        // Asking again for the same engine renews it; the JSON mirror takes ?engine=.
        using (var again = await _host.Http.PostAsync($"/v1/adapters/hot-lora/load?engine={target.Name}", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
            using var body = JsonDocument.Parse(await again.Content.ReadAsStringAsync());
            Assert.Equal("AlreadyPlaced", body.RootElement.GetProperty("reason").GetString());
        }

        var unknownEngine = await router.RequestLoadAsync(new RequestLoadRequest { Name = "hot-lora", Engine = "engine-9" });
        Assert.Equal((false, "UnknownEngine"), (unknownEngine.Accepted, unknownEngine.Reason));
        Assert.Contains("engine-0", unknownEngine.Message);
        Assert.Equal("NotFound", (await router.RequestLoadAsync(new RequestLoadRequest { Name = "nope", Engine = target.Name })).Reason);

        // Nothing was taken away from anyone: every desired set sent since still holds the engine's own adapter.
        Assert.All(_sidecars, s => Assert.All(s.EnsureCalls.Skip(callsBefore[s]), call => Assert.Contains(call.Adapters, a => a.Name == own[s])));
    }

    [Fact]
    public async Task An_overflow_replica_is_unloaded_when_its_grant_expires()
    {
        var router = await StartAsync(extra: new Dictionary<string, string?> { ["ControlPlane:Overflow:GrantTtl"] = "00:00:03" });
        var holder = Holder("hot-lora");
        var target = Holder("c-lora");

        var granted = await router.RequestLoadAsync(new RequestLoadRequest { Name = "hot-lora", Engine = target.Name });
        Assert.True(granted.Accepted, granted.Message);
        await ControlPlaneHost.WaitUntilAsync(() => target.Loaded.Contains("hot-lora"), "the overflow replica is loaded");

        await ControlPlaneHost.WaitUntilAsync(() => target.Desired.SequenceEqual(["c-lora"]), "the overflow replica is unloaded after its grant expired");
        Assert.Equal(["hot-lora"], holder.Desired);
        await _host!.WaitForAsync("hot", a => a.Status?.PodAssignments?.Count == 1);
    }

    [Theory]
    [InlineData("ControlPlane:Overflow:ExtraSlotsPerEngine", "0", "EngineFull")]
    [InlineData("ControlPlane:Overflow:Enabled", "false", "OverflowDisabled")]
    public async Task Overflow_loads_are_refused_with_the_reason_when_configuration_does_not_allow_them(string key, string value, string reason)
    {
        var router = await StartAsync(extra: new Dictionary<string, string?> { [key] = value });
        var target = Holder("b-lora");
        var calls = target.EnsureCalls.Count;

        var refused = await router.RequestLoadAsync(new RequestLoadRequest { Name = "hot-lora", Engine = target.Name });

        Assert.Equal((false, reason), (refused.Accepted, refused.Reason));
        Assert.Contains(value == "false" ? "ControlPlane:Overflow:Enabled" : "nothing is evicted", refused.Message);
        Assert.Equal(["b-lora"], target.Desired);
        Assert.Equal(calls, target.EnsureCalls.Count);
    }
}
