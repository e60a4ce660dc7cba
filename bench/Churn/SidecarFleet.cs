using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HybridServing.Contracts.Sidecar;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HybridServing.Bench.Churn;

/// <summary>The engine facts every simulated sidecar reports (GetInfo and WatchState).</summary>
internal sealed record SimulatedEngineShape(string BaseModel, int MaxLoras, int MaxCpuLoras, int MaxLoraRank, int EnginesPerNode);

/// <summary>
/// The churn benchmark's boundary: <c>count</c> EngineSidecar gRPC endpoints (the sidecar contract,
/// <c>Contracts/Protos/sidecar.proto</c>) with no engine and no GPU behind them. Each acknowledges
/// <c>EnsureAdapters</c> at once (new adapters LOADING), reports them LOADED on its <c>WatchState</c>
/// stream after a seeded, jittered delay, and unloads what leaves the set. What is measured is the
/// ControlPlane's side: how it batches sidecar calls and Kubernetes writes, not how engines load.
/// <para>
/// All sidecars share one Kestrel host, one h2c port per sidecar; a call finds its sidecar by the
/// local port it arrived on, so the ControlPlane sees <c>count</c> distinct pods' sidecars while the
/// harness pays for one web host on a shared 2-core machine.
/// </para>
/// </summary>
internal sealed class SidecarFleet : IAsyncDisposable
{
    private readonly Dictionary<int, SimulatedSidecar> _byPort = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentQueue<EnsureRecord> _ensureCalls = new();
    private readonly Lock _gate = new();
    private WebApplication? _app;
    private long _loaded;
    private (long Total, TaskCompletionSource<DateTimeOffset> Done)? _expected;

    private SidecarFleet() { }

    public IReadOnlyList<SimulatedSidecar> Sidecars { get; private set; } = [];

    /// <summary>Adapters LOADED on some sidecar right now (replicas counted once per engine).</summary>
    public long Loaded => Interlocked.Read(ref _loaded);

    /// <summary>Every EnsureAdapters call received: when, on which engine, with how many adapters.</summary>
    public IReadOnlyList<EnsureRecord> EnsureCalls => [.. _ensureCalls];

    public static async Task<SidecarFleet> StartAsync(int count, SimulatedEngineShape shape, TimeSpan loadDelay, int seed)
    {
        var fleet = new SidecarFleet();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            // Port 0: the kernel hands out each port, so nothing can take it between choosing and binding.
            for (var i = 0; i < count; i++) k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2);
        });
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(fleet);
        var app = builder.Build();
        app.MapGrpcService<FleetSidecarService>();
        await app.StartAsync();
        fleet._app = app;

        var ports = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a).Port).Order().ToList();
        if (ports.Count != count) throw new InvalidOperationException($"the sidecar host bound {ports.Count} ports, expected {count}.");
        var sidecars = new List<SimulatedSidecar>();
        for (var i = 0; i < count; i++)
        {
            var info = new EngineInfo
            {
                EngineKind = "mock", MaxLoras = shape.MaxLoras, MaxCpuLoras = shape.MaxCpuLoras, MaxLoraRank = shape.MaxLoraRank,
                PodName = $"engine-{i:D3}", NodeName = $"node-{i / shape.EnginesPerNode:D2}", EngineUrl = $"http://engine-{i:D3}.no-engine.invalid:8000", // the boundary: no engine behind the sidecar
                BaseModels = { shape.BaseModel },
            };
            var sidecar = new SimulatedSidecar(fleet, info, ports[i], loadDelay, new Random(unchecked(seed * 7919 + i)), fleet._stopping.Token);
            sidecars.Add(sidecar);
            fleet._byPort[ports[i]] = sidecar;
        }
        fleet.Sidecars = sidecars;
        return fleet;
    }

    /// <summary>Completes when <paramref name="total"/> adapters are LOADED across the fleet, with the moment it happened.</summary>
    public Task<DateTimeOffset> WhenLoaded(long total)
    {
        lock (_gate)
        {
            var tcs = new TaskCompletionSource<DateTimeOffset>(TaskCreationOptions.RunContinuationsAsynchronously);
            _expected = (total, tcs);
            if (Interlocked.Read(ref _loaded) >= total) tcs.TrySetResult(DateTimeOffset.UtcNow);
            return tcs.Task;
        }
    }

    internal SimulatedSidecar For(ServerCallContext context)
    {
        var port = context.GetHttpContext().Connection.LocalPort;
        return _byPort.TryGetValue(port, out var sidecar)
            ? sidecar
            : throw new RpcException(new Status(StatusCode.Unavailable, $"no simulated sidecar on port {port} (yet)."));
    }

    internal void OnEnsure(EnsureRecord record) => _ensureCalls.Enqueue(record);

    internal void OnLoadedChanged(long delta)
    {
        var now = DateTimeOffset.UtcNow;
        var total = Interlocked.Add(ref _loaded, delta);
        lock (_gate)
            if (_expected is { } e && total >= e.Total) e.Done.TrySetResult(now);
    }

    public async ValueTask DisposeAsync()
    {
        // End the open WatchState streams first: Kestrel would otherwise wait for them until its shutdown timeout.
        await _stopping.CancelAsync();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        _stopping.Dispose();
    }
}

/// <summary>One EnsureAdapters call a simulated sidecar received.</summary>
internal sealed record EnsureRecord(DateTimeOffset At, string Engine, int Adapters);

/// <summary>
/// One engine's sidecar in the <see cref="SidecarFleet"/>: it holds the desired set the ControlPlane
/// sends and moves new adapters from LOADING to LOADED after the load delay. Status messages are
/// replaced, never mutated, so a snapshot being written to a stream never changes underneath.
/// </summary>
internal sealed class SimulatedSidecar(SidecarFleet fleet, EngineInfo info, int port, TimeSpan loadDelay, Random random, CancellationToken stopping)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, AdapterStatus> _adapters = new(StringComparer.Ordinal);
    private readonly List<Channel<bool>> _watchers = [];
    private long _generation;
    private int _largestSet;

    public EngineInfo Info { get; } = info;
    public string Name => Info.PodName;
    public string Node => Info.NodeName;
    public int Port { get; } = port;

    /// <summary>The most adapters the ControlPlane ever asked this engine to hold at once.</summary>
    public int LargestDesiredSet
    {
        get { lock (_gate) return _largestSet; }
    }

    public int Held
    {
        get { lock (_gate) return _adapters.Count; }
    }

    public EnsureAdaptersResponse Ensure(EnsureAdaptersRequest request)
    {
        var now = Timestamp.FromDateTime(DateTime.UtcNow);
        var response = new EnsureAdaptersResponse { Generation = request.Generation };
        var loading = new List<string>();
        long unloaded = 0;
        TimeSpan delay;
        lock (_gate)
        {
            var wanted = request.Adapters.Select(a => a.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var gone in _adapters.Keys.Where(n => !wanted.Contains(n)).ToList())
            {
                if (_adapters[gone].Phase == AdapterPhase.Loaded) unloaded++;
                _adapters.Remove(gone);
            }
            foreach (var spec in request.Adapters)
            {
                if (_adapters.ContainsKey(spec.Name)) continue;
                _adapters[spec.Name] = new AdapterStatus
                {
                    Name = spec.Name, Source = spec.Source, Digest = spec.Sha256, Pinned = spec.Pinned,
                    Phase = AdapterPhase.Loading, Updated = now,
                };
                loading.Add(spec.Name);
            }
            _generation = request.Generation;
            _largestSet = Math.Max(_largestSet, _adapters.Count);
            // Seeded jitter: engines do not all finish loading in the same instant.
            delay = loadDelay * (0.5 + random.NextDouble());
            response.Adapters.AddRange(_adapters.Values);
        }
        fleet.OnEnsure(new EnsureRecord(DateTimeOffset.UtcNow, Name, request.Adapters.Count));
        if (unloaded > 0) fleet.OnLoadedChanged(-unloaded);
        if (loading.Count > 0) _ = FinishLoadingAsync(loading, delay);
        Notify();
        return response;
    }

    private async Task FinishLoadingAsync(List<string> names, TimeSpan delay)
    {
        try { await Task.Delay(delay, stopping); }
        catch (OperationCanceledException) { return; }
        var now = Timestamp.FromDateTime(DateTime.UtcNow);
        long loaded = 0;
        lock (_gate)
        {
            foreach (var name in names)
            {
                // Unloaded (or replaced) meanwhile: nothing to finish.
                if (!_adapters.TryGetValue(name, out var s) || s.Phase != AdapterPhase.Loading) continue;
                var done = s.Clone();
                done.Phase = AdapterPhase.Loaded;
                done.Updated = now;
                _adapters[name] = done;
                loaded++;
            }
        }
        if (loaded > 0) fleet.OnLoadedChanged(loaded);
        Notify();
    }

    public ListAdaptersResponse List()
    {
        var response = new ListAdaptersResponse();
        lock (_gate) response.Adapters.AddRange(_adapters.Values);
        return response;
    }

    /// <summary>A snapshot at once, then one after every change; bursts of changes coalesce into one message.</summary>
    public async Task WatchAsync(IServerStreamWriter<EngineState> stream, CancellationToken callEnded)
    {
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(callEnded, stopping);
        var wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        wake.Writer.TryWrite(true);
        lock (_gate) _watchers.Add(wake);
        try
        {
            while (await wake.Reader.WaitToReadAsync(ended.Token))
            {
                wake.Reader.TryRead(out _);
                EngineState state;
                lock (_gate)
                {
                    state = new EngineState { Info = Info, Load = new EngineLoad { Healthy = true }, DesiredGeneration = _generation };
                    state.Adapters.AddRange(_adapters.Values);
                }
                await stream.WriteAsync(state, ended.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            lock (_gate) _watchers.Remove(wake);
        }
    }

    private void Notify()
    {
        Channel<bool>[] watchers;
        lock (_gate) watchers = [.. _watchers];
        foreach (var w in watchers) w.Writer.TryWrite(true);
    }
}

/// <summary>The sidecar contract's gRPC service; each call is answered by the sidecar whose port it arrived on.</summary>
internal sealed class FleetSidecarService(SidecarFleet fleet) : EngineSidecar.EngineSidecarBase
{
    public override Task<EngineInfo> GetInfo(GetInfoRequest request, ServerCallContext context) => Task.FromResult(fleet.For(context).Info);

    public override Task<EnsureAdaptersResponse> EnsureAdapters(EnsureAdaptersRequest request, ServerCallContext context) =>
        Task.FromResult(fleet.For(context).Ensure(request));

    public override Task<ListAdaptersResponse> ListAdapters(ListAdaptersRequest request, ServerCallContext context) =>
        Task.FromResult(fleet.For(context).List());

    public override Task WatchState(WatchStateRequest request, IServerStreamWriter<EngineState> responseStream, ServerCallContext context) =>
        fleet.For(context).WatchAsync(responseStream, context.CancellationToken);
}
