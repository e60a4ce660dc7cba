using System.Net;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace HybridServing.KubeApiTestServer.Tests;

/// <summary>Collects a KubernetesClient watch stream in the background so tests can await events one by one.</summary>
internal sealed class WatchCollector<T> : IAsyncDisposable
{
    private readonly Channel<(WatchEventType Type, T Object)> _events = Channel.CreateUnbounded<(WatchEventType, T)>();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;

    public WatchCollector(Func<Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> open)
    {
        _pump = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in open(ex => Errors.Add(ex), _stop.Token))
                {
                    _events.Writer.TryWrite(e);
                }
            }
            catch (OperationCanceledException)
            {
                // Stopped by the test.
            }
            catch (Exception e)
            {
                Errors.Add(e);
            }
            finally
            {
                _events.Writer.TryComplete();
            }
        });
    }

    public List<Exception> Errors { get; } = [];

    /// <summary>The next event, or throws after the timeout; null when the stream ended.</summary>
    public async Task<(WatchEventType Type, T Object)?> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(5));
        try
        {
            return await _events.Reader.WaitToReadAsync(cts.Token) && _events.Reader.TryRead(out var e) ? e : null;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("no watch event arrived in time");
        }
    }

    /// <summary>Events already received, without waiting.</summary>
    public List<(WatchEventType Type, T Object)> Drain()
    {
        var list = new List<(WatchEventType, T)>();
        while (_events.Reader.TryRead(out var e))
        {
            list.Add(e);
        }

        return list;
    }

    /// <summary>Completes when the server ends the stream.</summary>
    public Task Ended => _pump;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _pump.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            // The pump is stuck in a read the token cannot interrupt; the server's disposal cuts it.
        }

        _stop.Dispose();
    }
}

internal static class Objects
{
    public const string Ns = "default";

    public static V1ConfigMap ConfigMap(string name, IDictionary<string, string>? labels = null, IDictionary<string, string>? data = null) => new()
    {
        ApiVersion = "v1",
        Kind = "ConfigMap",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Ns, Labels = labels },
        Data = data ?? new Dictionary<string, string> { ["k"] = "v" },
    };

    public static V1Pod Pod(string name, IDictionary<string, string>? labels = null, string? node = null, string ns = Ns) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = labels },
        Spec = new V1PodSpec { NodeName = node, Containers = [new V1Container { Name = "engine", Image = "vllm/vllm-openai:test" }] },
    };

    public static async Task<HttpOperationException> ExpectStatus(HttpStatusCode code, Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<HttpOperationException>(call);
        Assert.Equal(code, e.Response.StatusCode);
        return e;
    }

    /// <summary>The Kubernetes Status in an error response.</summary>
    public static V1Status Status(HttpOperationException e) => KubernetesJson.Deserialize<V1Status>(e.Response.Content);

    public static long Rv(IMetadata<V1ObjectMeta> o) => long.Parse(o.Metadata.ResourceVersion, System.Globalization.CultureInfo.InvariantCulture);
}

internal static class AdapterWatch
{
    /// <summary>
    /// Watches LoraAdapters the way KubernetesClient 21 recommends for custom resources: the generic
    /// custom-object watch, whose objects arrive as JSON and are read as the typed resource.
    /// </summary>
    public static async IAsyncEnumerable<(WatchEventType, Contracts.Resources.LoraAdapter)> Open(
        Kubernetes client, string? resourceVersion, Action<Exception> onError, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var (type, obj) in client.CustomObjects.WatchListNamespacedCustomObjectAsync(
                           Contracts.Resources.LoraAdapter.Group, Contracts.Resources.LoraAdapter.Version, Objects.Ns, Contracts.Resources.LoraAdapter.Plural,
                           resourceVersion: resourceVersion, onError: onError, cancellationToken: ct))
        {
            yield return (type, KubernetesJson.Deserialize<Contracts.Resources.LoraAdapter>(((System.Text.Json.JsonElement)obj).GetRawText()));
        }
    }
}
