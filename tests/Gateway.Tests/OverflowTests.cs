using System.Collections.Concurrent;
using System.Net;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.ColdStarts;
using HybridServing.Gateway.Load;
using HybridServing.Gateway.Tests.Hosts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

/// <summary>
/// Overflow loads over real HTTP and gRPC: "hot" is held only by e1, whose two GPU slots are taken by other
/// adapters (scraped from its <c>/metrics</c>); e2 has four free slots and does not hold it.
/// </summary>
public sealed class OverflowTests : IAsyncLifetime
{
    private FakeEngine _holder = null!;
    private FakeEngine _free = null!;
    private FakeControlPlane _cp = null!;
    private readonly ConcurrentQueue<RequestLoadRequest> _asked = new();

    public async Task InitializeAsync()
    {
        _holder = await FakeEngine.StartAsync("e1", "hot");
        _free = await FakeEngine.StartAsync("e2");
        _holder.SetLoad(running: 2, waiting: 1, kv: 0.3, maxLora: 2, runningAdapters: "x,y", waitingAdapters: "hot");
        _free.SetLoad(running: 0, waiting: 0, kv: 0.1, maxLora: 4);
        _cp = await FakeControlPlane.StartAsync(Table(1, Engines, Adapter("hot", endpoints: ("e1", Residency.Loaded))));
    }

    public async Task DisposeAsync()
    {
        await _cp.DisposeAsync();
        await _holder.DisposeAsync();
        await _free.DisposeAsync();
    }

    private Engine[] Engines => [Engine("e1", _holder.Url), Engine("e2", _free.Url)];

    /// <summary>What a ControlPlane does when it grants the overflow: e2 loads "hot" and the table says so.</summary>
    private RequestLoadResponse LoadOnFreeEngine()
    {
        _free.Models.Add("hot");
        _cp.Publish(Table(2, Engines, Adapter("hot", endpoints: [("e1", Residency.Loaded), ("e2", Residency.Loaded)])));
        return new RequestLoadResponse { Accepted = true, Reason = "Overflow" };
    }

    /// <summary>
    /// A gateway whose scraped load never counts as stale here: the test is about decisions, not timing.
    /// It has seen one request hold the holder for <paramref name="service"/> (five streamed tokens), so it
    /// knows the service time the advisor weighs: 0.6 s by default, a slot freeing every 0.3 s on the
    /// two-slot holder, more than twice the 0.1 s control path.
    /// </summary>
    private async Task<GatewayHost> StartGatewayAsync(IDictionary<string, string?>? settings = null, double service = 0.6)
    {
        var config = new Dictionary<string, string?> { ["Gateway:Picking:MaxLoadAge"] = "00:10:00" };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>()) config[k] = v;
        var gw = await GatewayHost.StartAsync(_cp.Url, config);
        await gw.WaitForTableAsync(1);
        var board = gw.Services.GetRequiredService<EngineLoadBoard>();
        await Until(() => board.Scraped("e1")?.Load.MaxLoras == 2 && board.Scraped("e2")?.Load.MaxLoras == 4);
        // Before any service time is known the advisor has nothing to weigh: this request stays on the holder.
        _holder.TokenDelay = TimeSpan.FromSeconds(service / _holder.StreamTokens);
        using (var warmUp = await gw.Client.SendAsync(gw.Chat("hot", stream: true)))
            Assert.Equal("e1", EngineOf(warmUp));
        _holder.TokenDelay = TimeSpan.Zero;
        var costs = gw.Services.GetRequiredService<OverflowCoordinator>().Costs;
        await Until(() => costs.Current.ServiceSeconds is not null);
        Assert.Equal(0, _cp.RequestLoads);
        _holder.Received.Clear();
        return gw;
    }

    private static string EngineOf(HttpResponseMessage response) => response.Headers.GetValues("x-hybridserving-engine").Single();

    [Fact]
    public async Task A_request_whose_only_holder_is_slot_bound_is_served_by_a_free_engine_after_an_overflow_load()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _cp.OnRequestLoad = async request =>
        {
            _asked.Enqueue(request);
            await release.Task;
            return LoadOnFreeEngine();
        };
        // A generous wait: the requests below must not fall back while the test holds the load.
        await using var gw = await StartGatewayAsync(new Dictionary<string, string?> { ["Gateway:Picking:Overflow:Wait"] = "00:00:30" });

        var requests = Enumerable.Range(0, 6).Select(i => gw.Client.SendAsync(gw.Chat("hot", stream: i % 2 == 0))).ToList();
        await Until(() => _cp.RequestLoads == 1);
        release.SetResult();
        var responses = await Task.WhenAll(requests);

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.All(responses, r => Assert.Equal("e2", EngineOf(r)));
        var asked = Assert.Single(_asked);
        Assert.Equal(("hot", "e2"), (asked.Name, asked.Engine));
        Assert.Equal(1, gw.Services.GetRequiredService<OverflowCoordinator>().RequestLoadCalls);
        Assert.Empty(_holder.Received);
        Assert.Equal(6, _free.Received.Count);
        foreach (var r in responses) r.Dispose();
    }

    [Fact]
    public async Task A_refused_overflow_falls_back_to_the_holder_and_is_not_asked_again_while_it_cools_down()
    {
        _cp.OnRequestLoad = request =>
        {
            _asked.Enqueue(request);
            return Task.FromResult(new RequestLoadResponse { Accepted = false, Reason = "MaxReplicas", Message = "'hot' is already on 1 engine(s), its replicas.max." });
        };
        await using var gw = await StartGatewayAsync(new Dictionary<string, string?> { ["Gateway:Picking:Overflow:RefusalCooldown"] = "00:10:00" });

        for (var i = 0; i < 3; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("hot"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("e1", EngineOf(response));
        }
        Assert.Single(_asked);
        Assert.Empty(_free.Received);
    }

    [Fact]
    public async Task An_overflow_not_ready_within_the_wait_falls_back_to_the_holder()
    {
        // Accepted, but the table never shows the adapter on e2.
        _cp.OnRequestLoad = request =>
        {
            _asked.Enqueue(request);
            return Task.FromResult(new RequestLoadResponse { Accepted = true, Reason = "Overflow" });
        };
        await using var gw = await StartGatewayAsync(new Dictionary<string, string?> { ["Gateway:Picking:Overflow:Wait"] = "00:00:00.200" });

        using var response = await gw.Client.SendAsync(gw.Chat("hot", stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("e1", EngineOf(response));
        Assert.Single(_asked);
        Assert.Empty(_free.Received);
    }

    [Fact]
    public async Task An_unreachable_control_plane_falls_back_to_the_holder()
    {
        _cp.OnRequestLoad = _ => throw new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.Unavailable, "down for the test"));
        await using var gw = await StartGatewayAsync();

        using var response = await gw.Client.SendAsync(gw.Chat("hot"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("e1", EngineOf(response));
    }

    [Fact]
    public async Task No_overflow_when_the_holders_slots_turn_over_faster_than_the_control_path()
    {
        _cp.OnRequestLoad = _ => Task.FromResult(LoadOnFreeEngine());
        // Requests hold the holder for ~20 ms: a slot frees in ~10 ms, far sooner than a 0.1 s overflow load.
        await using var gw = await StartGatewayAsync(service: 0.02);

        using var response = await gw.Client.SendAsync(gw.Chat("hot"));
        Assert.Equal("e1", EngineOf(response));
        Assert.Equal(0, _cp.RequestLoads);
        Assert.Empty(_free.Received);
    }

    [Theory]
    [InlineData("round-robin", null)]
    [InlineData("least-request", null)]
    [InlineData("lora-affinity", null)]
    [InlineData("hybrid", "false")]
    public async Task Baselines_and_a_disabled_overflow_never_overflow(string policy, string? enabled)
    {
        _cp.OnRequestLoad = _ => Task.FromResult(LoadOnFreeEngine());
        await using var gw = await StartGatewayAsync(new Dictionary<string, string?>
        {
            ["Gateway:Picking:Policy"] = policy,
            ["Gateway:Picking:Overflow:Enabled"] = enabled,
        });

        for (var i = 0; i < 3; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("hot"));
            Assert.Equal("e1", EngineOf(response));
        }
        Assert.Equal(0, _cp.RequestLoads);
    }

    [Theory]
    [InlineData("Gateway:Picking:Overflow:Enabled", "true", "Gateway:Picking:Overflow:Enabled is true but Gateway:Picking:Policy is not 'hybrid'")]
    [InlineData("Gateway:Picking:Overflow:FreeSlotHeadroom", "-1", "Gateway:Picking:Overflow:FreeSlotHeadroom must be >= 0.")]
    [InlineData("Gateway:Picking:Overflow:MaxQueueDepth", "-1", "Gateway:Picking:Overflow:MaxQueueDepth must be >= 0.")]
    [InlineData("Gateway:Picking:Overflow:Wait", "00:00:00", "Gateway:Picking:Overflow:Wait must be positive.")]
    [InlineData("Gateway:Picking:Overflow:RefusalCooldown", "-00:00:01", "Gateway:Picking:Overflow:RefusalCooldown must not be negative.")]
    [InlineData("Gateway:Picking:Overflow:ControlPathCost", "-00:00:01", "Gateway:Picking:Overflow:ControlPathCost must not be negative.")]
    [InlineData("Gateway:Picking:Overflow:CostSmoothing", "0", "Gateway:Picking:Overflow:CostSmoothing must be in (0, 1].")]
    [InlineData("Gateway:Picking:Overflow:CostSmoothing", "1.5", "Gateway:Picking:Overflow:CostSmoothing must be in (0, 1].")]
    [InlineData("Gateway:Picking:Overflow:WaitToCostRatio", "-1", "Gateway:Picking:Overflow:WaitToCostRatio must be a finite number >= 0.")]
    public async Task Bad_overflow_options_stop_start_up_naming_the_key(string key, string value, string expected)
    {
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => GatewayHost.StartAsync(_cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Picking:Policy"] = "round-robin",
            [key] = value,
        }));
        Assert.Contains(expected, e.Message);
    }

    /// <summary>Waits for the real scraper or the control plane (wall-clock I/O); bounded.</summary>
    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 15 s");
            await Task.Delay(20);
        }
    }
}
