using Google.Protobuf;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Reconciliation;
using HybridServing.ControlPlane.Routing;
using k8s;
using k8s.Models;

namespace HybridServing.ControlPlane.Api;

/// <summary>
/// The HTTP surface: LoraAdapters in Kubernetes shape (what <c>kubectl get lora -o json</c> would
/// show), the JSON mirror of the router API (proto3 JSON mapping of the same messages), and an
/// operator's status page.
/// </summary>
internal static class ControlPlaneEndpoints
{
    public const string ApiPrefix = "/apis/" + LoraAdapter.Group + "/" + LoraAdapter.Version;
    private static readonly JsonFormatter ProtoJson = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    public static IEndpointRouteBuilder MapLoraAdapterApi(this IEndpointRouteBuilder app)
    {
        app.MapGet(ApiPrefix + "/namespaces/{ns}/" + LoraAdapter.Plural, (string ns, LoraAdapterStore store) => List(store, ns));
        app.MapGet(ApiPrefix + "/" + LoraAdapter.Plural, (LoraAdapterStore store) => List(store, null));
        app.MapGet(ApiPrefix + "/namespaces/{ns}/" + LoraAdapter.Plural + "/{name}", (string ns, string name, LoraAdapterStore store) =>
            store.Get(ns, name) is { } adapter ? Json(KubernetesJson.Serialize(adapter)) : NotFound(name));
        return app;
    }

    public static IEndpointRouteBuilder MapRouterJson(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/routes", (RoutingTableStore routes) => Proto(routes.Current));
        app.MapGet("/v1/adapters", (string? baseModel, RoutingTableStore routes) => Proto(RouterQueries.ListAvailable(routes.Current, baseModel)));
        app.MapGet("/v1/adapters/{name}/pods", (string name, RoutingTableStore routes) =>
            RouterQueries.PodsFor(routes.Current, name) is { } pods ? Proto(pods) : Problem(404, "NotFound", $"no adapter named '{name}' is declared."));
        app.MapPost("/v1/adapters/{name}/load", async (string name, string? engine, Reconciler reconciler, CancellationToken ct) =>
        {
            var response = string.IsNullOrEmpty(engine)
                ? await reconciler.RequestLoadAsync(name, ct)
                : await reconciler.RequestOverflowAsync(name, engine, ct);
            var code = response.Accepted ? StatusCodes.Status202Accepted : response.Reason == "NotFound" ? StatusCodes.Status404NotFound : StatusCodes.Status409Conflict;
            return Results.Text(ProtoJson.Format(response), "application/json", statusCode: code);
        });
        app.MapGet("/v1/status", (Reconciler reconciler, IControlPlaneHome home, RoutingTableStore routes) => Results.Json(StatusPage(reconciler.Model, home, routes)));
        // Scale-down drains (the Autoscaler): POST starts one and answers after the pass that placed the engine's
        // adapters elsewhere; GET polls it ("done" once every adapter it holds is LOADED elsewhere); DELETE ends it.
        const string drain = "/v1/engines/{name}/drain";
        app.MapPost(drain, async (string name, Reconciler reconciler, CancellationToken ct) =>
            DrainResult(name, await reconciler.DrainAsync(name, ct), StatusCodes.Status202Accepted));
        app.MapGet(drain, (string name, Reconciler reconciler, IControlPlaneHome home) =>
            DrainResult(name, home.Current.Engines.Any(e => e.Name == name) ? reconciler.Model : null, StatusCodes.Status200OK));
        app.MapDelete(drain, async (string name, Reconciler reconciler, CancellationToken ct) =>
            DrainResult(name, await reconciler.UndrainAsync(name, ct), StatusCodes.Status200OK));
        // The same by the engine's URL (what an autoscaler configured with engine URLs knows), matched canonically:
        // localhost, 127.0.0.1 and [::1] are one host, the default port and a trailing slash do not matter.
        const string drainByUrl = "/v1/engines/drain";
        app.MapPost(drainByUrl, async (string? engineUrl, Reconciler reconciler, CancellationToken ct) =>
            await ByUrl(engineUrl, reconciler, async name => DrainResult(name, await reconciler.DrainAsync(name, ct), StatusCodes.Status202Accepted)));
        app.MapGet(drainByUrl, async (string? engineUrl, Reconciler reconciler, IControlPlaneHome home) =>
            await ByUrl(engineUrl, reconciler, name => Task.FromResult(DrainResult(name, home.Current.Engines.Any(e => e.Name == name) ? reconciler.Model : null, StatusCodes.Status200OK))));
        app.MapDelete(drainByUrl, async (string? engineUrl, Reconciler reconciler, CancellationToken ct) =>
            await ByUrl(engineUrl, reconciler, async name => DrainResult(name, await reconciler.UndrainAsync(name, ct), StatusCodes.Status200OK)));
        return app;
    }

    /// <summary>Runs <paramref name="action"/> on the engine whose reported URL is <paramref name="engineUrl"/>; 400 or 404 naming it otherwise.</summary>
    private static async Task<IResult> ByUrl(string? engineUrl, Reconciler reconciler, Func<string, Task<IResult>> action)
    {
        if (EngineUrls.Canonical(engineUrl) is null)
            return Problem(400, "BadRequest", $"engineUrl: '{engineUrl}' is not an absolute http(s) URL (e.g. ?engineUrl=http://127.0.0.1:8000).");
        var engines = reconciler.Model.Engines;
        var matches = engines.Where(v => EngineUrls.Same(v.EngineUrl, engineUrl)).Select(v => v.Endpoint.Name).ToList();
        return matches.Count switch
        {
            1 => await action(matches[0]),
            0 => Problem(404, "NotFound", $"no engine reports engineUrl '{engineUrl}' (known: {string.Join(", ", engines.Where(v => v.EngineUrl is not null).OrderBy(v => v.Endpoint.Name, StringComparer.Ordinal).Select(v => $"{v.Endpoint.Name}={v.EngineUrl}").DefaultIfEmpty("none yet"))})."),
            _ => Problem(409, "Ambiguous", $"engines {string.Join(", ", matches)} all report engineUrl '{engineUrl}'; drain one by name (/v1/engines/{{name}}/drain)."),
        };
    }

    private static IResult DrainResult(string engine, ReconcileModel? model, int status) => model is null
        ? Problem(404, "NotFound", $"no engine named '{engine}' is declared (see /v1/status for the engines' names).")
        : Results.Json(DrainState(engine, model), statusCode: status);

    private static object DrainState(string engine, ReconcileModel model)
    {
        var draining = model.Drained.TryGetValue(engine, out var since);
        var pending = draining ? model.DrainPending(engine) : [];
        return new { engine, draining, since = draining ? since : (DateTimeOffset?)null, pending, done = draining && pending.Count == 0 };
    }

    private static IResult List(LoraAdapterStore store, string? ns)
    {
        var list = new LoraAdapterList
        {
            Metadata = new V1ListMeta { ResourceVersion = store.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            Items = [.. store.List(ns)],
        };
        return Json(KubernetesJson.Serialize(list));
    }

    private static IResult Json(string json, int status = 200) => Results.Text(json, "application/json", statusCode: status);

    private static IResult Proto(IMessage message) => Results.Text(ProtoJson.Format(message), "application/json");

    // The shape kube-apiserver answers with (KubernetesClient cannot serialize V1Status itself).
    private static IResult NotFound(string name) => Results.Json(new
    {
        kind = "Status",
        apiVersion = "v1",
        metadata = new { },
        status = "Failure",
        message = $"{LoraAdapter.Plural}.{LoraAdapter.Group} \"{name}\" not found",
        reason = "NotFound",
        details = new { name, group = LoraAdapter.Group, kind = LoraAdapter.Plural },
        code = 404,
    }, statusCode: 404);

    private static IResult Problem(int code, string reason, string message) =>
        Results.Json(new { error = new { code, reason, message } }, statusCode: code);

    private static object StatusPage(ReconcileModel model, IControlPlaneHome home, RoutingTableStore routes) => new
    {
        home = home.Kind,
        synced = home.Synced,
        reconcile = new { sequence = model.Sequence, at = model.Sequence == 0 ? (DateTimeOffset?)null : model.At },
        routesVersion = routes.Current.Version,
        problems = home.Current.Problems.Select(p => new { origin = p.Origin, message = p.Message }),
        engines = model.Engines.Select(v => new
        {
            name = v.Endpoint.Name,
            node = v.Node,
            sidecarUrl = v.Endpoint.SidecarUrl.ToString(),
            labels = v.Endpoint.Labels,
            connected = v.Connected,
            disconnectedSince = v.DisconnectedSince,
            lastError = v.LastError,
            engineUrl = v.EngineUrl,
            drain = model.Drained.ContainsKey(v.Endpoint.Name) ? DrainState(v.Endpoint.Name, model) : null,
            sleeping = v.Sleeping,
            engineKind = v.Info?.EngineKind,
            baseModels = v.Info?.BaseModels.ToArray(),
            maxLoras = v.Info?.MaxLoras,
            maxCpuLoras = v.Info?.MaxCpuLoras,
            maxLoraRank = v.Info?.MaxLoraRank,
            desired = model.Plan.AdaptersOn(v.Endpoint.Name),
            sentGeneration = v.SentGeneration,
            adapters = v.Adapters.Values.OrderBy(a => a.Name, StringComparer.Ordinal)
                .Select(a => new { name = a.Name, phase = StatusBuilder.PhaseName(a.Phase), reason = a.Reason, message = a.Message }),
        }),
        adapters = model.Owners.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => new
        {
            name = o.Key,
            resource = o.Value.Resource.Key,
            engines = model.Plan.EnginesFor(o.Key),
            overflow = model.OverflowEngines(o.Key).Select(e => new
            {
                engine = e,
                expires = model.Overflows.FirstOrDefault(g => g.Adapter == o.Key && g.Engine == e)?.Expires,
            }),
            shortfall = model.Plan.Shortfalls.TryGetValue(o.Key, out var s) ? new { reason = s.Reason, message = s.Message } : null,
        }),
    };
}
