using Grpc.Net.Client;
using HybridServing.Contracts.ControlPlane;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;
using Microsoft.Extensions.DependencyInjection;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

/// <summary>A follower replica decides and publishes routes, but only the leader drives sidecars.</summary>
public sealed class LeadershipTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("lead");
    private readonly FakeSidecar _sidecar = new("engine-0", "node-0");

    private sealed class Follower : IControlPlaneLeadership
    {
        public bool IsLeader => false;
        public string? Leader => "controlplane-0";
        public event Action? LeadershipChanged { add { } remove { } }
    }

    public async Task InitializeAsync()
    {
        TestAdapters.Write(_dir.Combine("manifests", "adapters"), "support-en", 8);
        TestAdapters.Write(_dir.Combine("manifests", "adapters"), "cold-lora", 8);
        await _sidecar.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _sidecar.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task A_follower_routes_what_the_sidecars_report_but_sends_no_desired_set_and_refuses_cold_and_overflow_loads()
    {
        var manifests = _dir.Combine("manifests");
        Manifests.Write(manifests, "support.yaml", Manifests.Adapter("support", "./adapters", adapters: ["support-en"]));
        Manifests.Write(manifests, "cold.yaml", Manifests.Adapter("cold", "./adapters", adapters: ["cold-lora"],
            extraSpec: "  deploymentConfig:\n    loadOnStartup: false\n"));
        await using var host = await ControlPlaneHost.StartAsync(manifests, [_sidecar], services: s => s.AddSingleton<IControlPlaneLeadership, Follower>());

        // The leader (elsewhere) loaded support-en: the follower's table shows it from the sidecar's report.
        _sidecar.SimulateLoaded("support-en");
        using var channel = GrpcChannel.ForAddress(host.GrpcUrl);
        var router = new AdapterRouter.AdapterRouterClient(channel);
        await ControlPlaneHost.WaitUntilAsync(() =>
        {
            var table = router.ListAvailableAdapters(new ListAvailableAdaptersRequest());
            return table.Adapters.Any(a => a.Name == "support-en" && a.Endpoints.Any(e => e.Residency == Residency.Loaded));
        }, "the follower routes support-en");

        Assert.Empty(_sidecar.EnsureCalls);
        var refused = await router.RequestLoadAsync(new RequestLoadRequest { Name = "cold-lora" });
        Assert.False(refused.Accepted);
        Assert.Equal("NotLeader", refused.Reason);
        Assert.Contains("controlplane-0", refused.Message);
        var overflow = await router.RequestLoadAsync(new RequestLoadRequest { Name = "support-en", Engine = "engine-0" });
        Assert.Equal((false, "NotLeader"), (overflow.Accepted, overflow.Reason));
        Assert.Empty(_sidecar.EnsureCalls);
    }
}
