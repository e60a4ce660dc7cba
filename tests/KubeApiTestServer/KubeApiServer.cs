using System.Net;
using System.Reflection;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Diagnostics;
using HybridServing.KubeApiTestServer.Faults;
using HybridServing.KubeApiTestServer.Http;
using HybridServing.KubeApiTestServer.Resources;
using HybridServing.KubeApiTestServer.Storage;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace HybridServing.KubeApiTestServer;

/// <summary>
/// A stateful Kubernetes API server for tests, on real Kestrel at 127.0.0.1 (port 0). KubernetesClient
/// talks to it over HTTP exactly as to a cluster:
/// <code>
/// await using var server = await KubeApiServer.StartAsync();
/// using var client = new Kubernetes(new KubernetesClientConfiguration { Host = server.Url });
/// </code>
/// The C# members are test hooks: seed and read objects directly, inject faults and latency, read the
/// request log, compact watch history (watches from before then get 410), close or cut open watches.
/// </summary>
public sealed class KubeApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ObjectStore _store;
    private readonly FaultInjector _faults;
    private readonly RequestLog _log;
    private readonly ITimer _bookmarks;
    private readonly CancellationTokenSource _stopping;
    private readonly X509Certificate2? _authority;
    private long _latencyTicks;

    private KubeApiServer(WebApplication app, ObjectStore store, ResourceCatalog catalog, FaultInjector faults, RequestLog log, ITimer bookmarks, CancellationTokenSource stopping, string url, X509Certificate2? authority)
    {
        _authority = authority;
        _app = app;
        _store = store;
        Resources = catalog;
        _faults = faults;
        _log = log;
        _bookmarks = bookmarks;
        _stopping = stopping;
        Url = url;
    }

    /// <summary>The base URL, e.g. <c>http://127.0.0.1:41234</c>; use it as <c>KubernetesClientConfiguration.Host</c>.</summary>
    public string Url { get; }

    /// <summary>With <see cref="KubeApiServerOptions.Https"/>, the PEM of the CA that signed the server's certificate; otherwise null.</summary>
    public string? CertificateAuthorityPem => _authority?.ExportCertificatePem();

    /// <summary>The served resources; register more (another CRD) with <see cref="ResourceCatalog.Register"/>.</summary>
    public ResourceCatalog Resources { get; }

    /// <summary>The newest resourceVersion handed out (etcd's revision).</summary>
    public long ResourceVersion => _store.CurrentResourceVersion;

    /// <summary>Watches currently streaming.</summary>
    public int OpenWatches => _store.OpenWatchCount;

    /// <summary>Latency added to every request (faults can add more).</summary>
    public TimeSpan RequestLatency
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _latencyTicks));
        set => Interlocked.Exchange(ref _latencyTicks, value.Ticks);
    }

    /// <summary>Every request answered so far, in order.</summary>
    public IReadOnlyList<RequestRecord> Requests => _log.Snapshot();

    /// <summary>Starts a server on 127.0.0.1 with a free port.</summary>
    public static async Task<KubeApiServer> StartAsync(KubeApiServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new KubeApiServerOptions();
        var time = options.TimeProvider;
        var catalog = new ResourceCatalog(options.Resources);
        var store = new ObjectStore(time, options.WatchHistoryCapacity, options.RandomSeed is { } seed ? new Random(seed) : new Random())
        {
            RequireNamespaces = options.RequireNamespaces,
            GracefulPodDeletion = options.GracefulPodDeletion,
        };
        store.AddValidator(ResourceCatalog.CustomResourceDefinitions, crd =>
        {
            try
            {
                CustomResourceDefinitionReader.Describe(crd);
                return null;
            }
            catch (ArgumentException e)
            {
                return new FieldError("spec", e.Message);
            }
        });

        // A cluster always has the default namespace.
        store.Create(ResourceCatalog.Namespaces, "", new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Namespace",
            ["metadata"] = new JsonObject { ["name"] = "default" },
            ["status"] = new JsonObject { ["phase"] = "Active" },
        }, seed: true);
        var faults = new FaultInjector();
        var log = new RequestLog();
        var stopping = new CancellationTokenSource();

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        var (authority, certificate) = options.Https ? ServingCertificates.Create(options.ListenAddress) : (null, null);
        builder.WebHost.ConfigureKestrel(k => k.Listen(options.ListenAddress, options.Port, listen =>
        {
            if (certificate is not null) listen.UseHttps(certificate);
        }));
        var app = builder.Build();

        KubeApiServer? server = null;
        var handler = new ApiRequestHandler(store, catalog, faults, log, time, () => server?.RequestLatency ?? TimeSpan.Zero, stopping.Token);
        app.Run(handler.HandleAsync);
        await app.StartAsync(cancellationToken);

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var bookmarks = time.CreateTimer(_ => store.SendBookmarks(), null, options.BookmarkInterval, options.BookmarkInterval);
        server = new KubeApiServer(app, store, catalog, faults, log, bookmarks, stopping, address.TrimEnd('/'), authority);
        return server;
    }

    /// <summary>Client settings pointing at this server.</summary>
    public KubernetesClientConfiguration ClientConfiguration() =>
        _authority is null ? new() { Host = Url } : new() { Host = Url, SslCaCerts = [X509CertificateLoader.LoadCertificate(_authority.RawData)] };

    /// <summary>
    /// Writes a kubeconfig for this server (context <c>hybridserving-test</c>, namespace <c>default</c>,
    /// no credentials; over HTTPS the server's CA and a token, which the server does not check, since
    /// kubectl asks for a user name on an HTTPS server without one) so that kubectl can be pointed at it: <c>kubectl --kubeconfig {path} get lora</c>.
    /// </summary>
    public void WriteKubeConfig(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        File.WriteAllText(path, $$"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: hybridserving-test
              cluster:
                server: {{Url}}{{(_authority is null ? "" : "\n    certificate-authority-data: " + Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(_authority.ExportCertificatePem())))}}
            contexts:
            - name: hybridserving-test
              context:
                cluster: hybridserving-test
                namespace: default
                user: hybridserving-test
            current-context: hybridserving-test
            users:
            - name: hybridserving-test
              user: {{(_authority is null ? "{}" : "{token: hybridserving-test}")}}

            """);
    }

    /// <summary>A KubernetesClient for this server; dispose it.</summary>
    public Kubernetes CreateClient() => new(ClientConfiguration());

    // ------------------------------------------------------------ objects

    /// <summary>
    /// Stores an object directly, as if it had always been in the cluster: upsert, status kept
    /// (engine pods with a podIP, a LoraAdapter with status), watchers see ADDED or MODIFIED.
    /// Returns the stored object with uid and resourceVersion.
    /// </summary>
    public T Seed<T>(T obj) where T : IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(obj);
        var node = JsonNode.Parse(KubernetesJson.Serialize(obj)) as JsonObject ?? throw new ArgumentException("The object does not serialize to a JSON object.", nameof(obj));
        var resource = ResourceFor(obj.ApiVersion, obj.Kind, typeof(T));
        var stored = SeedNode(resource, obj.Metadata?.NamespaceProperty, node);
        return KubernetesJson.Deserialize<T>(stored.Json);
    }

    /// <summary>Stores an object given as JSON (apiVersion and kind required); see <see cref="Seed{T}(T)"/>.</summary>
    public JsonObject Seed(JsonObject obj)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var node = (JsonObject)obj.DeepClone();
        var resource = ResourceFor(StoredObject.Text(node["apiVersion"]), StoredObject.Text(node["kind"]), null);
        var stored = SeedNode(resource, StoredObject.Text(node["metadata"]?["namespace"]), node);
        return (JsonObject)JsonNode.Parse(stored.Json)!;
    }

    private StoredObject SeedNode(ApiResource resource, string? ns, JsonObject node)
    {
        if (resource.Namespaced && string.IsNullOrEmpty(ns))
        {
            throw new ArgumentException($"A {resource.Kind} is namespaced: set metadata.namespace to seed it.");
        }

        try
        {
            return _store.Create(resource, ns ?? "", node, seed: true);
        }
        catch (ApiError e)
        {
            throw new ArgumentException($"The object cannot be seeded: {e.Message}", e);
        }
    }

    /// <summary>Reads an object without HTTP; null when it does not exist. <paramref name="ns"/> is ignored for cluster-scoped kinds.</summary>
    public T? Get<T>(string? ns, string name) where T : IKubernetesObject<V1ObjectMeta>
    {
        var resource = ResourceFor(typeof(T));
        var stored = _store.TryGet(resource, resource.Namespaced ? ns ?? "" : "", name);
        return stored is null ? default : KubernetesJson.Deserialize<T>(stored.Json);
    }

    /// <summary>Lists objects without HTTP, in key order; all namespaces when <paramref name="ns"/> is null.</summary>
    public IReadOnlyList<T> List<T>(string? ns = null) where T : IKubernetesObject<V1ObjectMeta>
    {
        var resource = ResourceFor(typeof(T));
        return _store.Snapshot(resource, resource.Namespaced ? ns : null).Select(o => KubernetesJson.Deserialize<T>(o.Json)).ToArray();
    }

    /// <summary>
    /// Removes an object through the normal delete semantics (finalizers respected, dependents
    /// collected, watchers see the change), as <c>kubectl delete</c> would. False when it does not exist.
    /// </summary>
    public bool Delete<T>(string? ns, string name) where T : IKubernetesObject<V1ObjectMeta>
    {
        var resource = ResourceFor(typeof(T));
        var objectNamespace = resource.Namespaced ? ns ?? "" : "";
        if (_store.TryGet(resource, objectNamespace, name) is null)
        {
            return false;
        }

        _store.Delete(resource, objectNamespace, name, new DeleteRequest(null, null, Orphan: false));
        return true;
    }

    /// <summary>
    /// Polls the stored object until <paramref name="condition"/> holds (the object is null while it
    /// does not exist); returns the object that satisfied it. For waiting on a controller's writes.
    /// </summary>
    public async Task<T?> WaitUntilAsync<T>(string? ns, string name, Func<T?, bool> condition, TimeSpan timeout) where T : IKubernetesObject<V1ObjectMeta>
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var current = Get<T>(ns, name);
            if (condition(current))
            {
                return current;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{typeof(T).Name} {ns}/{name} did not reach the expected state within {timeout}; last seen: {(current is null ? "absent" : KubernetesJson.Serialize(current))}");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Adds an admission check for a resource, run on every write through the API (create, update,
    /// patch, status) but not on <see cref="Seed{T}(T)"/>: return a <see cref="FieldError"/> to refuse
    /// with 422 Invalid, as a CRD's OpenAPI schema or CEL rules would.
    /// </summary>
    public void AddValidator<T>(Func<T, FieldError?> validate) where T : IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(validate);
        _store.AddValidator(ResourceFor(typeof(T)), node => validate(KubernetesJson.Deserialize<T>(node.ToJsonString())));
    }

    /// <summary>The JSON form of <see cref="AddValidator{T}"/>, for resources without a C# type.</summary>
    public void AddValidator(ApiResource resource, Func<JsonObject, FieldError?> validate)
    {
        ArgumentNullException.ThrowIfNull(resource);
        ArgumentNullException.ThrowIfNull(validate);
        _store.AddValidator(resource, validate);
    }

    // ------------------------------------------------------------ faults and log

    /// <summary>Registers a fault (see <see cref="FaultRule"/>); returns it so a test can read <see cref="FaultRule.Hits"/>.</summary>
    public FaultRule InjectFault(FaultRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if (rule.StatusCode is { } code && (code < 400 || code > 599))
        {
            throw new ArgumentException($"A fault answers an error status (400-599), not {code}.", nameof(rule));
        }

        _faults.Add(rule);
        return rule;
    }

    /// <summary>The next <paramref name="count"/> requests for <paramref name="verb"/> on <paramref name="resource"/> answer <paramref name="statusCode"/>.</summary>
    public FaultRule FailNext(string verb, string resource, int statusCode, int count = 1) =>
        InjectFault(new FaultRule(verb, resource, count) { StatusCode = statusCode });

    public void ClearFaults() => _faults.Clear();

    public void ClearRequests() => _log.Clear();

    // ------------------------------------------------------------ watches

    /// <summary>
    /// Forgets watch history up to now (one resource, or all), as etcd compaction does. Watches that
    /// resume from an older resourceVersion get an ERROR event with a 410 Status; continue tokens from
    /// older lists get 410. Returns the resourceVersion compacted through.
    /// </summary>
    public long CompactHistory(ApiResource? resource = null) => _store.Compact(resource);

    /// <summary>Ends every open watch cleanly (end of stream, as at a server-side timeout); returns how many.</summary>
    public int CloseWatches() => _store.CloseWatches(abort: false);

    /// <summary>Cuts every open watch's connection (the client sees an I/O error); returns how many.</summary>
    public int AbortWatches() => _store.CloseWatches(abort: true);

    /// <summary>Sends a BOOKMARK to every watch that allows them, now rather than at the next interval.</summary>
    public void SendBookmarks() => _store.SendBookmarks();

    /// <summary>Waits until at least <paramref name="count"/> watches are open (e.g. an informer has started watching).</summary>
    public async Task WaitForWatchesAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (OpenWatches < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Expected {count} open watches within {timeout}, found {OpenWatches}.");
            }

            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _bookmarks.DisposeAsync();
        _store.StopTimers();
        _store.CloseWatches(abort: true);
        await _stopping.CancelAsync();
        using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(stopTimeout.Token);
        await _app.DisposeAsync();
        _stopping.Dispose();
    }

    private ApiResource ResourceFor(Type type)
    {
        if (type.GetCustomAttribute<KubernetesEntityAttribute>() is { } entity)
        {
            return ResourceFor(entity.Group.Length == 0 ? entity.ApiVersion : entity.Group + "/" + entity.ApiVersion, entity.Kind, type);
        }

        if (Activator.CreateInstance(type) is IKubernetesObject instance)
        {
            return ResourceFor(instance.ApiVersion, instance.Kind, type);
        }

        throw new ArgumentException($"Cannot tell which resource {type.Name} is: it has no KubernetesEntity attribute and no default apiVersion/kind.");
    }

    private ApiResource ResourceFor(string? apiVersion, string? kind, Type? type)
    {
        if (string.IsNullOrEmpty(apiVersion) || string.IsNullOrEmpty(kind))
        {
            if (type is not null && type.GetCustomAttribute<KubernetesEntityAttribute>() is not null)
            {
                return ResourceFor(type);
            }

            throw new ArgumentException("The object needs apiVersion and kind to be seeded.");
        }

        return Resources.FindByKind(apiVersion, kind)
               ?? throw new ArgumentException($"No resource is registered for apiVersion {apiVersion}, kind {kind}; register it with Resources.Register.");
    }
}
