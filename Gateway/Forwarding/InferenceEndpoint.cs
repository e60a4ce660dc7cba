using System.Diagnostics;
using System.Text.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.ColdStarts;
using HybridServing.Gateway.Demand;
using HybridServing.Gateway.Health;
using HybridServing.Gateway.Limits;
using HybridServing.Gateway.Load;
using HybridServing.Gateway.Observability;
using HybridServing.Gateway.OpenAi;
using HybridServing.Gateway.Picking;
using HybridServing.Gateway.Routing;
using HybridServing.Gateway.Tenancy;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Forwarding;

/// <summary>
/// <c>POST /v1/chat/completions</c> and <c>/v1/completions</c>: authenticate → read the body once →
/// take out <c>model</c> → resolve it for the tenant → rate limit → pick an engine that holds it
/// (cold start if none) → forward unchanged, retrying on another engine only when nothing reached the
/// client: the connection failed, or the engine dropped the request (died) before any response header.
/// </summary>
internal sealed partial class InferenceEndpoint(
    TenantAuthenticator authenticator,
    RoutingDatastore routes,
    EndpointRouter router,
    ModelAliases aliases,
    ColdStartCoordinator coldStarts,
    AsleepPoolHold asleepHold,
    OverflowCoordinator overflows,
    RequestRateLimits rateLimits,
    DemandCounter demand,
    EngineForwarder forwarder,
    EngineLoadBoard loads,
    PassiveHealth health,
    UsageLedger usage,
    GatewayTelemetry telemetry,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<InferenceEndpoint> logger)
{
    public async Task HandleAsync(HttpContext context)
    {
        var started = time.GetTimestamp();
        using var activity = GatewayTelemetry.ActivitySource.StartActivity("gateway.inference");
        var labels = new RequestLabels();
        try
        {
            await HandleCoreAsync(context, activity, labels, started);
        }
        finally
        {
            var status = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode;
            activity?.SetTag("http.response.status_code", status);
            telemetry.Requests.Add(1, new("model", labels.Model), new("adapter", labels.Adapter), new("tenant", labels.Tenant), new("status", status));
            if (labels.Tenant.Length > 0) usage.RecordRequest(labels.Tenant, labels.Model, status);
            telemetry.Duration.Record(time.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("model", labels.Model));
        }
    }

    private sealed class RequestLabels
    {
        public string Model = "unknown";
        public string Adapter = "";
        public string Tenant = "";
    }

    private async Task HandleCoreAsync(HttpContext context, Activity? activity, RequestLabels labels, long started)
    {
        var o = options.Value;
        var auth = authenticator.Authenticate(context.Request);
        if (auth.Tenant is not { } tenant)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, OpenAiErrors.Authentication, auth.Error!);
            return;
        }
        labels.Tenant = tenant.Name;
        activity?.SetTag("hybridserving.tenant", tenant.Name);

        if (!IsJson(context.Request.ContentType))
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status415UnsupportedMediaType, OpenAiErrors.UnsupportedMediaType,
                $"Unsupported Content-Type '{context.Request.ContentType}': send the request body as application/json (UTF-8).");
            return;
        }
        RequestBody? read;
        try
        {
            read = await RequestBody.ReadAsync(context.Request, o.MaxRequestBodyBytes, o.RequestBodyTimeout, context.RequestAborted);
        }
        catch (RequestBodyException e)
        {
            await OpenAiErrors.WriteAsync(context, e.Status, e.Status == StatusCodes.Status408RequestTimeout ? OpenAiErrors.RequestTimeout : OpenAiErrors.BadRequest, e.Message);
            return;
        }
        using var body = read;
        if (body is null)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, OpenAiErrors.RequestTooLarge,
                $"The request body is larger than the gateway's limit of {o.MaxRequestBodyBytes} bytes.");
            return;
        }
        var chat = context.Request.Path.Value?.EndsWith("/chat/completions", StringComparison.Ordinal) == true;
        var field = chat ? ModelField.Read(body.Span, "messages") : ModelField.Read(body.Span, "prompt", "prompt_embeds");
        if (!field.IsValid)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status400BadRequest, OpenAiErrors.BadRequest, field.Error!, field.Param);
            return;
        }

        // An alias names a version per sticky key; the engine must see the version's real name.
        var requested = field.Model!;
        var target = aliases.IsAlias(requested) ? aliases.Choose(requested, StickyKey(context, field, tenant)) : null;
        using var rewritten = target is null ? null
            : body.Replace(field.ModelTokenStart, field.ModelTokenLength, JsonSerializer.SerializeToUtf8Bytes(target));
        var forwardBody = rewritten ?? body;
        if (target is not null) activity?.SetTag("hybridserving.alias", requested);

        var snapshot = routes.Current;
        var model = snapshot.Resolve(target ?? requested);
        if (model is null)
        {
            await OpenAiErrors.ModelNotFoundAsync(context, requested);
            return;
        }
        if (model.Adapter is { } adapter && !tenant.MayUse(adapter))
        {
            LogForeignAdapter(tenant.Name, adapter.Name);
            if (o.Tenancy.HideForeignAdapters) await OpenAiErrors.ModelNotFoundAsync(context, requested);
            else await OpenAiErrors.WriteAsync(context, StatusCodes.Status403Forbidden, OpenAiErrors.PermissionDenied,
                $"Tenant '{tenant.Name}' may not use the model `{adapter.Name}` (namespace '{adapter.Namespace}').", "model");
            return;
        }
        labels.Model = model.Model;
        labels.Adapter = model.Adapter?.Name ?? "";
        activity?.SetTag("hybridserving.model", model.Model);
        activity?.SetTag("hybridserving.base_model", model.BaseModel);
        if (model.Adapter is not null) activity?.SetTag("hybridserving.adapter", model.Adapter.Name);

        if (rateLimits.TryAcquire(tenant, model.Adapter?.Name) is { } refusal)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, OpenAiErrors.RateLimit, refusal.Message, null, refusal.RetryAfter);
            return;
        }
        // Demand the ControlPlane places for: requests accepted for an adapter, whether or not it is loaded yet.
        if (model.Adapter is not null) demand.Count(model.Adapter.Name);

        var tried = new HashSet<string>(StringComparer.Ordinal);
        ForwardAttempt? last = null;
        for (var attempt = 1; attempt <= Math.Max(1, o.MaxAttempts); attempt++)
        {
            snapshot = routes.Current;
            var current = snapshot.Resolve(model.Model) ?? model;
            var pick = router.BuildRequest(snapshot, current, tried);
            var decision = router.Pick(pick);
            if (attempt == 1 && current.Adapter is not null && overflows.IsEnabledFor(router.Policy)
                && OverflowAdvisor.Advise(pick, decision, o.Picking.Overflow, overflows.Costs.Current, overflows.Pending) is { } overflowTarget)
                decision = await OverflowAsync(current, overflowTarget.Name, tried, activity, context.RequestAborted) ?? decision;
            if (decision.Chosen is null && decision.Reason == PickReasons.NotLoaded && current.Adapter is not null && attempt == 1)
            {
                var cold = await coldStarts.WaitAsync(current.Adapter.Name, s => router.Pick(s, s.Resolve(model.Model) ?? current, tried), context.RequestAborted);
                activity?.SetTag("hybridserving.cold_start", cold.Outcome.ToString());
                switch (cold.Outcome)
                {
                    case ColdStartOutcome.Ready:
                        decision = cold.Decision!;
                        break;
                    case ColdStartOutcome.Gone:
                        await OpenAiErrors.ModelNotFoundAsync(context, model.Model);
                        return;
                    default:
                        await OpenAiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, OpenAiErrors.ServiceUnavailable, cold.Message, "model",
                            TimeSpan.FromSeconds(o.ColdStart.RetryAfterSeconds));
                        return;
                }
            }
            if (decision.Chosen is null && decision.Reason == PickReasons.AllAsleep && attempt == 1)
            {
                // Activator: hold the request while the autoscaler (which reads held_requests) wakes an engine.
                decision = await asleepHold.WaitAsync(() => router.Pick(router.BuildRequest(routes.Current, routes.Current.Resolve(model.Model) ?? current, tried)),
                    context.RequestAborted);
                if (decision.Chosen is null && decision.Reason == PickReasons.AllAsleep)
                {
                    await OpenAiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, OpenAiErrors.ServiceUnavailable,
                        $"Every engine serving `{model.Model}` is asleep and none woke within {o.ColdStart.Timeout.TotalSeconds:0.#} s; retry shortly.",
                        "model", TimeSpan.FromSeconds(o.ColdStart.RetryAfterSeconds));
                    return;
                }
            }
            telemetry.Decisions.Add(1, new("policy", router.Policy), new("reason", decision.Reason));
            activity?.SetTag("hybridserving.decision", decision.Reason);
            activity?.SetTag("hybridserving.policy", router.Policy);
            if (decision.Chosen is not { } chosen)
            {
                var message = last is null
                    ? $"No healthy engine can serve the model `{model.Model}` right now ({decision.Reason}); retry shortly."
                    : $"The engines serving `{model.Model}` could not be reached; retry shortly.";
                await OpenAiErrors.WriteAsync(context, last is null ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status502BadGateway,
                    last is null ? OpenAiErrors.ServiceUnavailable : OpenAiErrors.BadGateway, message, null, TimeSpan.FromSeconds(o.ColdStart.RetryAfterSeconds));
                return;
            }

            activity?.SetTag("hybridserving.engine", chosen.Name);
            tried.Add(chosen.Name);
            if (attempt > 1)
                telemetry.Retries.Add(1, new("model", labels.Model), new("reason", last?.ModelNotFound == true ? "adapter-missing" : last?.EngineUnavailable == true ? "engine-unavailable" : last?.EngineDropped == true ? "engine-dropped" : "connect-failed"));
            var responseBody = context.Response.Body;
            using var tap = new ResponseTap(responseBody, () =>
                telemetry.TimeToFirstByte.Record(time.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("model", labels.Model)));
            context.Response.Body = tap;
            // Placement may have just moved the adapter off the chosen engine (the routing table lags by a
            // moment): its 404 is then held back and another holder tried.
            // Likewise a 503 (an engine that fell asleep before the next scrape showed it) when another holder can serve.
            var anotherHolder = attempt < Math.Max(1, o.MaxAttempts)
                && pick.Candidates.Any(c => c.Residency == Residency.Loaded && c.Name != chosen.Name && !tried.Contains(c.Name) && c.Engine.Healthy && !c.Ejected);
            var holdBackNotFound = current.Adapter is not null && anotherHolder;
            var forwardStarted = time.GetTimestamp();
            try
            {
                using (loads.Begin(chosen.Name))
                    last = await forwarder.ForwardAsync(context, chosen.Engine, forwardBody, holdBackNotFound, anotherHolder);
            }
            finally
            {
                context.Response.Body = responseBody;
            }

            if (last.ModelNotFound)
            {
                LogAdapterMissing(chosen.Name, current.Adapter!.Name);
                continue;
            }
            if (last.EngineUnavailable) continue;
            if (last.EngineDropped && anotherHolder)
            {
                health.ReportFailure(chosen.Name);
                LogEngineDropped(chosen.Name, last.Exception?.Message ?? last.Error.ToString());
                continue;
            }
            if (last.CanRetry)
            {
                health.ReportFailure(chosen.Name);
                LogConnectFailed(chosen.Name, attempt, last.Exception?.Message ?? last.Error.ToString());
                continue;
            }
            // How long an adapter request holds its engine: the service time the overflow advisor weighs.
            if (current.Adapter is not null && last.UpstreamStatus is >= 200 and < 300 && last.Error == Yarp.ReverseProxy.Forwarder.ForwarderError.None)
                overflows.Costs.ObserveService(time.GetElapsedTime(forwardStarted).TotalSeconds);
            if (last.UpstreamStatus is >= 200 and < 300 && UsageReader.TryRead(tap.Tail) is { } tokens)
            {
                usage.RecordTokens(tenant.Name, tokens.PromptTokens, tokens.CompletionTokens);
                telemetry.Tokens.Add(tokens.PromptTokens, new("model", labels.Model), new("tenant", tenant.Name), new("kind", "prompt"));
                telemetry.Tokens.Add(tokens.CompletionTokens, new("model", labels.Model), new("tenant", tenant.Name), new("kind", "completion"));
            }
            if (last.EngineFailed) health.ReportFailure(chosen.Name);
            else if (last.UpstreamStatus is not null)
            {
                health.ReportSuccess(chosen.Name);
                if (last.UpstreamRetryAfter is { } wait) health.ReportRetryAfter(chosen.Name, wait);
            }
            if (last.Error != Yarp.ReverseProxy.Forwarder.ForwarderError.None && !context.RequestAborted.IsCancellationRequested)
            {
                LogForwardFailed(chosen.Name, last.Error, last.Exception?.Message ?? "");
                // YARP set a bare 502; give it the OpenAI error body clients expect.
                if (!context.Response.HasStarted)
                    await OpenAiErrors.WriteAsync(context, StatusCodes.Status502BadGateway, OpenAiErrors.BadGateway,
                        $"The engine serving `{model.Model}` failed before answering; retry the request.");
            }
            return;
        }
        await OpenAiErrors.WriteAsync(context, StatusCodes.Status502BadGateway, OpenAiErrors.BadGateway,
            $"The engines serving `{model.Model}` could not be reached ({tried.Count} tried); retry shortly.", null,
            TimeSpan.FromSeconds(o.ColdStart.RetryAfterSeconds));
    }

    /// <summary>
    /// Every holder of the adapter is slot-bound and <paramref name="target"/> has free GPU slots: have the
    /// adapter loaded there and route to it through the pipeline (restricted to that engine, so the hard
    /// filters still decide). Falls back to a fresh pick among the holders; null keeps the caller's decision.
    /// </summary>
    private async Task<PickDecision?> OverflowAsync(ResolvedModel model, string target, IReadOnlySet<string> tried, Activity? activity, CancellationToken cancellationToken)
    {
        var result = await overflows.TryAsync(model.Adapter!.Name, target,
            s => router.Pick(router.BuildRequest(s, s.Resolve(model.Model) ?? model, tried, only: target)), cancellationToken);
        activity?.SetTag("hybridserving.overflow", OverflowCoordinator.OutcomeName(result.Outcome));
        activity?.SetTag("hybridserving.overflow_engine", target);
        if (result.Decision is { Chosen: not null } served) return served with { Reason = PickReasons.Overflow };
        LogOverflowFellBack(model.Model, target, result.Message);
        if (result.Outcome == OverflowOutcome.CoolingDown) return null;
        // Time has passed: pick again on the newest table.
        var snapshot = routes.Current;
        return router.Pick(snapshot, snapshot.Resolve(model.Model) ?? model, tried);
    }

    /// <summary>JSON in UTF-8, or no Content-Type at all (the body is parsed as JSON either way).</summary>
    private static bool IsJson(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType)) return true;
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media)) return false;
        var charset = media.Charset;
        return media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            && (!charset.HasValue || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Session header, else the body's <c>user</c>, else the tenant: the most specific key the client gave.</summary>
    private string StickyKey(HttpContext context, ModelFieldResult field, Tenant tenant)
    {
        var header = context.Request.Headers[options.Value.StickyHeader].ToString();
        return !string.IsNullOrEmpty(header) ? "s:" + header : !string.IsNullOrEmpty(field.User) ? "u:" + field.User : "t:" + tenant.Name;
    }

    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Tenant {Tenant} asked for adapter {Adapter} outside its namespaces.")]
    private partial void LogForeignAdapter(string tenant, string adapter);

    [LoggerMessage(EventId = 501, Level = LogLevel.Warning, Message = "Connecting to engine {Engine} failed (attempt {Attempt}): {Reason}")]
    private partial void LogConnectFailed(string engine, int attempt, string reason);

    [LoggerMessage(EventId = 503, Level = LogLevel.Debug, Message = "Overflow of {Model} to engine {Engine} not used ({Reason}); routing to a holder.")]
    private partial void LogOverflowFellBack(string model, string engine, string reason);

    [LoggerMessage(EventId = 504, Level = LogLevel.Information, Message = "Engine {Engine} answered 404 for adapter {Adapter} the routing table still shows there; trying another holder.")]
    private partial void LogAdapterMissing(string engine, string adapter);

    [LoggerMessage(EventId = 505, Level = LogLevel.Warning, Message = "Engine {Engine} dropped the request before answering ({Reason}); trying another holder.")]
    private partial void LogEngineDropped(string engine, string reason);

    [LoggerMessage(EventId = 502, Level = LogLevel.Warning, Message = "Forwarding to engine {Engine} failed: {Error} {Reason}")]
    private partial void LogForwardFailed(string engine, Yarp.ReverseProxy.Forwarder.ForwarderError error, string reason);
}
