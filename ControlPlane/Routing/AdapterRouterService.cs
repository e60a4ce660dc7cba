using Grpc.Core;
using HybridServing.Contracts.ControlPlane;
using HybridServing.ControlPlane.Placement;
using HybridServing.ControlPlane.Reconciliation;

namespace HybridServing.ControlPlane.Routing;

/// <summary>
/// The router integration API of the vLLM production-stack LoraAdapter proposal, over gRPC. Reads come from the published routing table, so
/// every answer is consistent with what WatchRoutes streams.
/// </summary>
internal sealed partial class AdapterRouterService(RoutingTableStore routes, Reconciler reconciler, DemandTracker demand, IHostApplicationLifetime lifetime, ILogger<AdapterRouterService> logger)
    : AdapterRouter.AdapterRouterBase
{
    public override Task<ListAvailableAdaptersResponse> ListAvailableAdapters(ListAvailableAdaptersRequest request, ServerCallContext context) =>
        Task.FromResult(RouterQueries.ListAvailable(routes.Current, request.BaseModel));

    public override Task<GetPodsForAdapterResponse> GetPodsForAdapter(GetPodsForAdapterRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.Name))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "name is required."));
        return RouterQueries.PodsFor(routes.Current, request.Name) is { } response
            ? Task.FromResult(response)
            : throw new RpcException(new Status(StatusCode.NotFound, $"no adapter named '{request.Name}' is declared."));
    }

    public override async Task WatchRoutes(WatchRoutesRequest request, IServerStreamWriter<RoutingTable> responseStream, ServerCallContext context)
    {
        var caller = string.IsNullOrEmpty(request.Gateway) ? context.Peer : request.Gateway;
        LogWatchStarted(logger, caller);
        // Version 0 is the empty table from before the first reconcile: gateways wait for a real one
        // rather than briefly answering 404 for everything after a control plane restart.
        long seen = 0;
        // End the stream when the host stops: Kestrel would otherwise wait for it until its shutdown timeout.
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        try
        {
            while (!ended.IsCancellationRequested)
            {
                var table = routes.Current;
                // Always send the newest table; versions in between are skipped, not queued.
                if (table.Version != seen)
                {
                    await responseStream.WriteAsync(table, ended.Token);
                    seen = table.Version;
                }
                await routes.WaitForNewerAsync(seen, ended.Token);
            }
        }
        catch (OperationCanceledException) when (ended.IsCancellationRequested)
        {
        }
        LogWatchEnded(logger, caller);
    }

    public override async Task<RequestLoadResponse> RequestLoad(RequestLoadRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.Name))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "name is required."));
        return string.IsNullOrEmpty(request.Engine)
            ? await reconciler.RequestLoadAsync(request.Name, context.CancellationToken)
            : await reconciler.RequestOverflowAsync(request.Name, request.Engine, context.CancellationToken);
    }

    public override Task<DemandReportAck> ReportDemand(DemandReport request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.Gateway))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "gateway is required (rates are kept per gateway and summed)."));
        foreach (var sample in request.Adapters)
        {
            if (string.IsNullOrEmpty(sample.Name))
                throw new RpcException(new Status(StatusCode.InvalidArgument, "every adapter sample needs a name."));
            if (sample.Requests < 0)
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"requests for '{sample.Name}' is {sample.Requests}; counts cannot be negative."));
        }
        // Placement runs again only when some adapter's rate asks for a different number of replicas.
        if (demand.Record(request)) reconciler.Wake();
        return Task.FromResult(new DemandReportAck());
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "WatchRoutes subscriber {Caller} connected")]
    private static partial void LogWatchStarted(ILogger logger, string caller);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "WatchRoutes subscriber {Caller} left")]
    private static partial void LogWatchEnded(ILogger logger, string caller);
}

/// <summary>Queries over a routing table, shared by the gRPC service and its JSON mirror.</summary>
internal static class RouterQueries
{
    public static ListAvailableAdaptersResponse ListAvailable(RoutingTable table, string? baseModel)
    {
        var response = new ListAvailableAdaptersResponse();
        response.Adapters.AddRange(table.Adapters.Where(a => string.IsNullOrEmpty(baseModel) || a.BaseModel == baseModel));
        return response;
    }

    public static GetPodsForAdapterResponse? PodsFor(RoutingTable table, string name)
    {
        var route = table.Adapters.FirstOrDefault(a => a.Name == name);
        if (route is null) return null;
        var response = new GetPodsForAdapterResponse();
        response.Endpoints.AddRange(route.Endpoints);
        return response;
    }
}
