using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using HybridServing.Contracts.Peft;
using HybridServing.ControlPlane.Sources;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Tests.Sources;

/// <summary>Adapter files for remote-source tests: real, large (so that reading only the header is visible), or hostile.</summary>
internal static class RemoteFixtures
{
    public static byte[] Config(int rank = 8, params string[] modules) => Encoding.UTF8.GetBytes(
        $$"""{"peft_type":"LORA","r":{{rank}},"lora_alpha":16,"target_modules":[{{string.Join(",", (modules.Length > 0 ? modules : ["q_proj", "v_proj"]).Select(m => $"\"{m}\""))}}],"base_model_name_or_path":"test/tiny","bias":"none"}""");

    /// <summary>A valid safetensors file whose data is <paramref name="dataBytes"/> long (two F32 tensors).</summary>
    public static byte[] Safetensors(int dataBytes, int rank = 8)
    {
        var half = dataBytes / 2 / 4 / rank * rank * 4;
        var cols = half / 4 / rank;
        var a = "\"base_model.model.layers.0.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[" + rank + "," + cols + "],\"data_offsets\":[0," + half + "]}";
        var b = "\"base_model.model.layers.0.self_attn.q_proj.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[" + cols + "," + rank + "],\"data_offsets\":[" + half + "," + 2 * half + "]}";
        var header = "{\"__metadata__\":{\"format\":\"pt\"}," + a + "," + b + "}";
        return WithHeader(Encoding.UTF8.GetBytes(header), 2 * half);
    }

    /// <summary>8-byte little-endian length, the header, then <paramref name="dataBytes"/> of data.</summary>
    public static byte[] WithHeader(byte[] header, long dataBytes, ulong? declaredLength = null)
    {
        var file = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(file, declaredLength ?? (ulong)header.Length);
        header.CopyTo(file, 8);
        new Random(header.Length).NextBytes(file.AsSpan(8 + header.Length));
        return file;
    }

    /// <summary>A header length far beyond the file: a hostile or corrupt upload.</summary>
    public static byte[] HostileLength() => WithHeader("{}"u8.ToArray(), 64, declaredLength: 90_000_000);

    public static SourceOptions Options(TimeSpan? timeout = null, string? secrets = null, string? hub = null, string? s3 = null) => new()
    {
        SourceRequestTimeout = timeout ?? TimeSpan.FromSeconds(5),
        SecretsDirectory = secrets,
        HubEndpoint = hub,
        S3 = new S3SourceOptions { ServiceUrl = s3 },
    };

    public static S3AdapterDiscovery S3(SourceOptions options, Dictionary<string, string>? environment = null) =>
        new(Microsoft.Extensions.Options.Options.Create(options), new DirectorySecretReader(options.SecretsDirectory),
            new SourceEnvironment(n => environment?.GetValueOrDefault(n)), NullLogger<S3AdapterDiscovery>.Instance);

    public static HubAdapterDiscovery Hub(SourceOptions options, SourceHttp http, Dictionary<string, string>? environment = null) =>
        new(Microsoft.Extensions.Options.Options.Create(options), new DirectorySecretReader(options.SecretsDirectory),
            new SourceEnvironment(n => environment?.GetValueOrDefault(n)), http);

    public static HttpAdapterDiscovery Http(SourceOptions options, SourceHttp http) =>
        new(Microsoft.Extensions.Options.Options.Create(options), new DirectorySecretReader(options.SecretsDirectory), http);

    /// <summary>Writes <c>{root}/{name}/{key}</c> files, a secret as the control plane reads them.</summary>
    public static string Secret(string root, string name, Dictionary<string, string> values)
    {
        var dir = Directory.CreateDirectory(Path.Combine(root, name)).FullName;
        foreach (var (k, v) in values) File.WriteAllText(Path.Combine(dir, k), v + "\n");
        return root;
    }

    /// <summary>A port nothing listens on.</summary>
    public static int ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

/// <summary>A server that accepts connections and never answers: every call to it must time out.</summary>
internal sealed class SilentServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly List<TcpClient> _clients = [];
    private readonly CancellationTokenSource _stop = new();

    public SilentServer()
    {
        _listener.Start();
        _ = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var c = await _listener.AcceptTcpClientAsync(_stop.Token);
                    lock (_clients) _clients.Add(c);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
        });
    }

    public Uri Url => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_clients) foreach (var c in _clients) c.Dispose();
        _stop.Dispose();
    }
}
