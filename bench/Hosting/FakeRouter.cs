using Grpc.Core;
using HybridServing.Contracts.ControlPlane;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HybridServing.Bench.Hosting;

/// <summary>
/// An in-bench AdapterRouter (the ControlPlane's gRPC routing API, h2c on 127.0.0.1) serving one fixed
/// table: the gateway under test routes with its full pipeline, and the benchmark needs no ControlPlane,
/// sidecar or Kubernetes. The table never changes during a run, so the router costs nothing per request.
/// </summary>
internal sealed class FakeRouter : AdapterRouter.AdapterRouterBase, IAsyncDisposable
{
    private readonly RoutingTable _table;
    private WebApplication? _app;

    private FakeRouter(RoutingTable table) => _table = table;

    public Uri Url { get; private set; } = null!;

    /// <summary>One table: engine-i at <paramref name="engines"/>[i].Url, holding (resident) adapter <paramref name="engines"/>[i].Adapter.</summary>
    public static RoutingTable Table(string baseModel, string ns, IReadOnlyList<(Uri Url, string Adapter)> engines)
    {
        var table = new RoutingTable { Version = 1 };
        for (var i = 0; i < engines.Count; i++)
        {
            table.Engines.Add(new Engine
            {
                Name = $"engine-{i}", Node = $"node-{i}", Url = engines[i].Url.ToString(), Healthy = true,
                MaxLoras = 1, MaxCpuLoras = 1, BaseModels = { baseModel },
            });
            var route = table.Adapters.FirstOrDefault(a => a.Name == engines[i].Adapter);
            if (route is null)
            {
                route = new AdapterRoute { Name = engines[i].Adapter, Namespace = ns, BaseModel = baseModel, Resource = engines[i].Adapter, Rank = 8 };
                table.Adapters.Add(route);
            }
            route.Endpoints.Add(new AdapterEndpoint { Engine = $"engine-{i}", Residency = Residency.Loaded });
        }
        return table;
    }

    public static async Task<FakeRouter> StartAsync(RoutingTable table)
    {
        var port = FreePorts.Get();
        var router = new FakeRouter(table) { Url = new Uri($"http://127.0.0.1:{port}") };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(router);
        var app = builder.Build();
        app.MapGrpcService<FakeRouter>();
        await app.StartAsync();
        router._app = app;
        return router;
    }

    public override async Task WatchRoutes(WatchRoutesRequest request, IServerStreamWriter<RoutingTable> responseStream, ServerCallContext context)
    {
        await responseStream.WriteAsync(_table);
        try { await Task.Delay(Timeout.Infinite, context.CancellationToken); }
        catch (OperationCanceledException) { }
    }

    public override Task<ListAvailableAdaptersResponse> ListAvailableAdapters(ListAvailableAdaptersRequest request, ServerCallContext context)
    {
        var response = new ListAvailableAdaptersResponse();
        response.Adapters.AddRange(_table.Adapters.Where(a => request.BaseModel.Length == 0 || a.BaseModel == request.BaseModel));
        return Task.FromResult(response);
    }

    public override Task<GetPodsForAdapterResponse> GetPodsForAdapter(GetPodsForAdapterRequest request, ServerCallContext context)
    {
        var response = new GetPodsForAdapterResponse();
        response.Endpoints.AddRange(_table.Adapters.Where(a => a.Name == request.Name).SelectMany(a => a.Endpoints));
        return Task.FromResult(response);
    }

    // Every adapter in the table is resident: a cold start would mean the benchmark is misconfigured.
    public override Task<RequestLoadResponse> RequestLoad(RequestLoadRequest request, ServerCallContext context) =>
        Task.FromResult(new RequestLoadResponse { Accepted = false, Reason = "UnknownAdapter", Message = $"the benchmark's table has no adapter '{request.Name}'" });

    public async ValueTask DisposeAsync()
    {
        if (_app is null) return;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
