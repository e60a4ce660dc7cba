using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Diagnostics;
using HybridServing.KubeApiTestServer.Faults;
using HybridServing.KubeApiTestServer.Resources;
using HybridServing.KubeApiTestServer.Selectors;
using HybridServing.KubeApiTestServer.Storage;
using HybridServing.KubeApiTestServer.Watching;
using Microsoft.AspNetCore.Http;

namespace HybridServing.KubeApiTestServer.Http;

/// <summary>Turns HTTP requests into store operations and store answers into Kubernetes JSON.</summary>
internal sealed class ApiRequestHandler(
    ObjectStore store,
    ResourceCatalog catalog,
    FaultInjector faults,
    RequestLog log,
    TimeProvider time,
    Func<TimeSpan> latency,
    CancellationToken stopping)
{
    private static readonly Encoding Utf8 = new UTF8Encoding(false);

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        ApiRoute? route = null;
        var verb = request.Method;
        try
        {
            route = ApiRoute.Parse(request.Path.Value ?? "/", catalog);
            if (route is null)
            {
                var path = request.Path.Value ?? "/";
                await WriteJsonAsync(context, 200, OpenApi.Answer(path, catalog) ?? Discovery.Answer(path, catalog) ?? throw ApiError.UnknownResource());
                Log(context, verb, route, 200, injected: false);
                return;
            }

            verb = VerbOf(request, route);
            var extra = latency();
            var fault = faults.Claim(verb, route.Resource.Plural, route.Subresource, route.Namespace, route.Name);
            if (fault is not null)
            {
                extra += fault.Delay;
            }

            if (extra > TimeSpan.Zero)
            {
                await Task.Delay(extra, time, context.RequestAborted);
            }

            if (fault?.Hold is { } hold)
            {
                await hold.WaitAsync(context.RequestAborted);
            }

            if (fault?.StatusCode is { } code)
            {
                var injected = ApiError.ForCode(code, fault.Message ?? $"injected fault: {verb} {route.Resource.QualifiedName} answers {code}");
                await WriteJsonAsync(context, code, injected.ToStatus().ToJsonString());
                Log(context, verb, route, code, injected: true);
                return;
            }

            if (verb == "watch")
            {
                await WatchAsync(context, route);
                return;
            }

            var (status, body) = await ServeAsync(context, route, verb);
            await WriteJsonAsync(context, status, body);
            Log(context, verb, route, status, injected: false);
        }
        catch (ApiError error)
        {
            await WriteJsonAsync(context, error.Code, error.ToStatus().ToJsonString());
            Log(context, verb, route, error.Code, injected: false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug here or in a test's validator: answer like an apiserver's internal error, with the cause.
            var error = ApiError.ForCode(500, $"the test server failed: {e.GetType().Name}: {e.Message}");
            await WriteJsonAsync(context, 500, error.ToStatus().ToJsonString());
            Log(context, verb, route, 500, injected: false);
        }
    }

    private static string VerbOf(HttpRequest request, ApiRoute route)
    {
        var hasName = route.Name is not null;
        return (request.Method, hasName) switch
        {
            ("GET", true) when route.WatchPath => "watch",
            ("GET", true) => "get",
            ("GET", false) when route.WatchPath || IsTrue(request.Query["watch"]) => "watch",
            ("GET", false) => "list",
            ("POST", false) => "create",
            ("PUT", true) => "update",
            ("PATCH", true) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => throw ApiError.MethodNotAllowed(request.Method),
        };
    }

    private async Task<(int Status, string Body)> ServeAsync(HttpContext context, ApiRoute route, string verb)
    {
        var resource = route.Resource;
        var ns = route.ObjectNamespace;
        var statusOnly = route.Subresource == "status";
        var dryRun = DryRun(context.Request.Query);
        if (route.Subresource == "scale")
        {
            return await ServeScaleAsync(context, route, verb, dryRun);
        }

        switch (verb)
        {
            case "get":
            {
                var stored = store.Get(resource, ns, route.Name!);
                return (200, AsTable(context) ? Table(context, resource, [stored.Json], null, null) : stored.Json);
            }

            case "list":
            {
                var query = context.Request.Query;
                var page = store.List(resource, ListNamespace(route), Labels(query), Fields(query, resource), Limit(query), query["continue"].FirstOrDefault());
                return (200, AsTable(context)
                    ? Table(context, resource, page.Items, page.ResourceVersion.ToString(CultureInfo.InvariantCulture), page.Continue)
                    : RenderList(resource, page));
            }

            case "create":
            {
                var body = await ReadObjectAsync(context);
                return (201, Established(store.Write(dryRun, () => store.Create(resource, ns, body)), dryRun).Json);
            }

            case "update":
            {
                var body = await ReadObjectAsync(context);
                return (200, Established(store.Write(dryRun, () => store.Update(resource, ns, route.Name!, body, statusOnly)), dryRun).Json);
            }

            case "patch":
            {
                var kind = PatchKindOf(context.Request.ContentType, resource);
                var patch = await ReadJsonAsync(context);
                return (200, Established(store.Write(dryRun, () => store.Patch(resource, ns, route.Name!, kind, patch, statusOnly)), dryRun).Json);
            }

            case "delete":
            {
                var options = await ReadDeleteOptionsAsync(context);
                var (deleted, removed) = store.Write(dryRun || options.DryRun, () => store.Delete(resource, ns, route.Name!, options));
                if (removed && !resource.ReturnsDeletedObject)
                {
                    return (200, SuccessStatus(deleted));
                }

                return (200, deleted.Json);
            }

            case "deletecollection":
            {
                var query = context.Request.Query;
                var deleted = store.Write(dryRun, () => store.DeleteCollection(resource, ListNamespace(route), Labels(query), Fields(query, resource)));
                return (200, RenderList(resource, new ListPage(deleted.Select(d => d.Json).ToArray(), store.CurrentResourceVersion, null, null)));
            }

            default:
                throw ApiError.MethodNotAllowed(context.Request.Method);
        }
    }

    /// <summary>
    /// What the apiextensions server does with a stored CustomResourceDefinition: serve its resource
    /// (short names, categories, printer columns) and mark it NamesAccepted and Established. The answer
    /// is the object as written; the status follows as a MODIFIED event, as from the CRD controller.
    /// </summary>
    private StoredObject Established(StoredObject written, bool dryRun)
    {
        if (dryRun || written.Resource.Key != ResourceCatalog.CustomResourceDefinitions.Key)
        {
            return written;
        }

        var crd = written.CloneNode();
        catalog.RegisterCustomResourceDefinition(crd);
        if (crd["status"]?["conditions"] is not JsonArray { Count: > 0 })
        {
            var status = new JsonObject { ["metadata"] = new JsonObject(), ["status"] = CustomResourceDefinitionReader.Established(crd, time.GetUtcNow()) };
            store.Update(written.Resource, "", written.Name, status, statusOnly: true);
        }

        return written;
    }

    private static bool AsTable(HttpContext context) => TableRenderer.Wanted(context.Request.Headers.Accept.ToString());

    private string Table(HttpContext context, ApiResource resource, IEnumerable<string> items, string? resourceVersion, string? continueToken) =>
        TableRenderer.Render(resource, items.Select(i => (JsonObject)JsonNode.Parse(i)!), resourceVersion, continueToken, context.Request.Query["includeObject"].FirstOrDefault(), time.GetUtcNow())
            .ToJsonString();

    private async Task<(int Status, string Body)> ServeScaleAsync(HttpContext context, ApiRoute route, string verb, bool dryRun)
    {
        var (resource, ns, name) = (route.Resource, route.ObjectNamespace, route.Name!);
        switch (verb)
        {
            case "get":
                return (200, store.GetScale(resource, ns, name).ToJsonString());

            case "update":
            {
                var body = await ReadObjectAsync(context);
                return (200, store.Write(dryRun, () => store.UpdateScale(resource, ns, name, _ => body)).ToJsonString());
            }

            case "patch":
            {
                // A Scale has no lists, so a strategic merge patch is a merge patch here.
                var kind = PatchKindOf(context.Request.ContentType, resource with { IsCustom = false });
                var patch = await ReadJsonAsync(context);
                return (200, store.Write(dryRun, () => store.UpdateScale(resource, ns, name, scale => ObjectStore.ApplyPatch(resource, name, kind, scale, patch))).ToJsonString());
            }

            default:
                throw ApiError.MethodNotAllowed(context.Request.Method);
        }
    }

    private async Task WatchAsync(HttpContext context, ApiRoute route)
    {
        var query = context.Request.Query;
        var fields = Fields(query, route.Resource);
        if (route.Name is not null)
        {
            // The legacy /watch/.../{name} form watches one object.
            fields = FieldSelector.Parse("metadata.name=" + route.Name, route.Resource);
        }

        TimeSpan? timeout = null;
        if (query["timeoutSeconds"].FirstOrDefault() is { Length: > 0 } seconds)
        {
            timeout = int.TryParse(seconds, NumberStyles.None, CultureInfo.InvariantCulture, out var s)
                ? TimeSpan.FromSeconds(s)
                : throw ApiError.BadRequest($"invalid timeoutSeconds \"{seconds}\": expected a non-negative integer");
        }

        var subscription = store.Watch(
            route.Resource,
            ListNamespace(route),
            Labels(query),
            fields,
            query["resourceVersion"].FirstOrDefault(),
            IsTrue(query["allowWatchBookmarks"]));

        Log(context, "watch", route, 200, injected: false);
        using var deadline = timeout is { } t && t > TimeSpan.Zero ? new CancellationTokenSource(t, time) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, context.RequestAborted, subscription.Aborted, stopping);
        try
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            await context.Response.StartAsync(linked.Token);
            await context.Response.Body.FlushAsync(linked.Token);
            var reader = subscription.Lines;
            var asTable = AsTable(context);
            var columnsSent = false;
            while (await reader.WaitToReadAsync(linked.Token))
            {
                while (reader.TryRead(out var line))
                {
                    var text = line;
                    if (asTable && JsonNode.Parse(line) is JsonObject watchEvent && watchEvent["object"] is JsonObject obj
                        && StoredObject.Text(watchEvent["type"]) is WatchEventTypes.Added or WatchEventTypes.Modified or WatchEventTypes.Deleted)
                    {
                        // kubectl get -w: each object as a one-row Table; the column definitions come with the first only, as from a real server.
                        var table = TableRenderer.Render(route.Resource, [obj], StoredObject.Text(obj["metadata"]?["resourceVersion"]), null, query["includeObject"].FirstOrDefault(), time.GetUtcNow());
                        if (columnsSent)
                        {
                            table["columnDefinitions"] = new JsonArray();
                        }

                        columnsSent = true;
                        watchEvent["object"] = table;
                        text = watchEvent.ToJsonString() + "\n";
                    }

                    await context.Response.Body.WriteAsync(Utf8.GetBytes(text), linked.Token);
                }

                await context.Response.Body.FlushAsync(linked.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // Timeout, client gone, or a test closing watches: the stream simply ends.
        }
        finally
        {
            store.Unsubscribe(subscription);
        }

        if (subscription.Aborted.IsCancellationRequested)
        {
            context.Abort();
        }
    }

    private static string? ListNamespace(ApiRoute route) => route.Resource.Namespaced ? route.Namespace : null;

    private static LabelSelector Labels(IQueryCollection query)
    {
        try
        {
            return LabelSelector.Parse(query["labelSelector"].FirstOrDefault());
        }
        catch (FormatException e)
        {
            throw ApiError.BadRequest(e.Message);
        }
    }

    private static FieldSelector Fields(IQueryCollection query, ApiResource resource)
    {
        try
        {
            return FieldSelector.Parse(query["fieldSelector"].FirstOrDefault(), resource);
        }
        catch (FormatException e)
        {
            throw ApiError.BadRequest(e.Message);
        }
    }

    private static int? Limit(IQueryCollection query)
    {
        var text = query["limit"].FirstOrDefault();
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var limit)
            ? limit
            : throw ApiError.BadRequest($"invalid limit \"{text}\": expected a non-negative integer");
    }

    /// <summary><c>dryRun=All</c> (the only value a real server accepts); anything else is 400.</summary>
    private static bool DryRun(IQueryCollection query) => DryRunValue(query["dryRun"].FirstOrDefault(), "dryRun");

    private static bool DryRunValue(string? value, string field) => value switch
    {
        null or "" => false,
        "All" => true,
        _ => throw ApiError.BadRequest($"Invalid value: \"{value}\": {field}: supported values: \"All\""),
    };

    private static bool IsTrue(Microsoft.Extensions.Primitives.StringValues value) =>
        value.FirstOrDefault() is "true" or "1" or "True";

    private static PatchKind PatchKindOf(string? contentType, ApiResource resource)
    {
        var mediaType = contentType?.Split(';')[0].Trim().ToLowerInvariant() ?? "";
        return mediaType switch
        {
            "application/merge-patch+json" => PatchKind.Merge,
            "application/json-patch+json" => PatchKind.Json,
            "application/strategic-merge-patch+json" when resource.IsCustom =>
                throw ApiError.UnsupportedMediaType(mediaType, "strategic merge patch is not supported for custom resources; use a merge patch or a JSON patch"),
            "application/strategic-merge-patch+json" => PatchKind.StrategicMerge,
            "application/apply-patch+yaml" or "application/apply-patch+json" =>
                throw ApiError.UnsupportedMediaType(mediaType, "server-side apply is not implemented by the Kubernetes API test server"),
            _ => throw ApiError.UnsupportedMediaType(mediaType, "not a patch media type"),
        };
    }

    private static async Task<JsonNode?> ReadJsonAsync(HttpContext context)
    {
        var mediaType = context.Request.ContentType?.Split(';')[0].Trim().ToLowerInvariant() ?? "";
        if (mediaType is "application/vnd.kubernetes.protobuf" or "application/yaml" or "application/cbor")
        {
            // A real server decodes these; this one reads JSON only, and says so rather than misreading the body.
            throw new ApiError(415, "UnsupportedMediaType",
                $"the Kubernetes API test server cannot decode a request body of type {mediaType}: send application/json");
        }

        using var reader = new StreamReader(context.Request.Body, Utf8);
        var text = await reader.ReadToEndAsync(context.RequestAborted);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw ApiError.BadRequest($"the request body is not valid JSON: {e.Message}");
        }
    }

    private static async Task<JsonObject> ReadObjectAsync(HttpContext context) =>
        await ReadJsonAsync(context) as JsonObject ?? throw ApiError.BadRequest("the request body must be a JSON object");

    private static async Task<DeleteRequest> ReadDeleteOptionsAsync(HttpContext context)
    {
        var body = await ReadJsonAsync(context) as JsonObject;
        var propagation = StoredObject.Text(body?["propagationPolicy"]) ?? context.Request.Query["propagationPolicy"].FirstOrDefault();
        var orphan = propagation == "Orphan" || body?["orphanDependents"] is JsonValue v && v.TryGetValue<bool>(out var o) && o;
        var grace = StoredObject.Number(body?["gracePeriodSeconds"]);
        if (grace is null && context.Request.Query["gracePeriodSeconds"].FirstOrDefault() is { Length: > 0 } text)
        {
            grace = long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
                ? parsed
                : throw ApiError.BadRequest($"invalid gracePeriodSeconds \"{text}\": expected a non-negative integer");
        }

        var dryRun = body?["dryRun"] switch
        {
            null => false,
            JsonArray values => values.Select(v => DryRunValue(StoredObject.Text(v), "dryRun")).Any(v => v),
            var other => throw ApiError.BadRequest($"dryRun must be a list of strings, not {other.ToJsonString()}"),
        };

        return new DeleteRequest(
            StoredObject.Text(body?["preconditions"]?["uid"]),
            StoredObject.Text(body?["preconditions"]?["resourceVersion"]),
            orphan,
            grace)
        {
            DryRun = dryRun,
        };
    }

    private static string RenderList(ApiResource resource, ListPage page)
    {
        var builder = new StringBuilder();
        builder.Append("{\"kind\":\"").Append(resource.ListKind)
            .Append("\",\"apiVersion\":\"").Append(resource.ApiVersion)
            .Append("\",\"metadata\":{\"resourceVersion\":\"").Append(page.ResourceVersion.ToString(CultureInfo.InvariantCulture)).Append('"');
        if (page.Continue is not null)
        {
            builder.Append(",\"continue\":").Append(JsonSerializer.Serialize(page.Continue, StringContext.Default.String));
        }

        if (page.RemainingItemCount is { } remaining)
        {
            builder.Append(",\"remainingItemCount\":").Append(remaining.ToString(CultureInfo.InvariantCulture));
        }

        builder.Append("},\"items\":[");
        for (var i = 0; i < page.Items.Count; i++)
        {
            if (i > 0)
            {
                builder.Append(',');
            }

            builder.Append(page.Items[i]);
        }

        return builder.Append("]}").ToString();
    }

    private static string SuccessStatus(StoredObject deleted) => new JsonObject
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Success",
        ["details"] = new JsonObject
        {
            ["name"] = deleted.Name,
            ["group"] = deleted.Resource.Group,
            ["kind"] = deleted.Resource.Plural,
            ["uid"] = deleted.Uid,
        },
    }.ToJsonString();

    private static async Task WriteJsonAsync(HttpContext context, int status, string body)
    {
        if (context.Response.HasStarted)
        {
            return;
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body, Utf8, context.RequestAborted);
    }

    private void Log(HttpContext context, string verb, ApiRoute? route, int status, bool injected) =>
        log.Add(new RequestRecord(
            time.GetUtcNow(),
            verb,
            context.Request.Method,
            context.Request.Path.Value ?? "",
            context.Request.QueryString.Value ?? "",
            route?.Resource.Group,
            route?.Resource.Plural,
            route?.Subresource,
            route?.Namespace,
            route?.Name,
            status,
            injected));
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class StringContext : System.Text.Json.Serialization.JsonSerializerContext;
