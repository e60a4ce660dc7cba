using System.Globalization;
using System.Net;
using HybridServing.KubeApiTestServer;

// dotnet run --project tests/KubeApiTestServer.Host -- [--port 6443] [--address 127.0.0.1] [--kubeconfig PATH]
var port = 6443;
var address = IPAddress.Loopback;
string? kubeconfig = null;
for (var i = 0; i < args.Length; i++)
{
    var value = i + 1 < args.Length ? args[i + 1] : null;
    switch (args[i])
    {
        case "--port" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is >= 0 and <= 65535:
            port = p;
            i++;
            break;
        case "--address" when IPAddress.TryParse(value ?? "", out var a):
            address = a;
            i++;
            break;
        case "--kubeconfig" when !string.IsNullOrEmpty(value):
            kubeconfig = Path.GetFullPath(value);
            i++;
            break;
        case "--help" or "-h":
            Console.WriteLine("usage: KubeApiTestServer.Host [--port 6443] [--address 127.0.0.1] [--kubeconfig PATH]");
            return 0;
        case "--port" or "--address" or "--kubeconfig":
            Console.Error.WriteLine($"error: {args[i]} needs a valid value, got '{value}' (--port 0-65535, --address an IP address, --kubeconfig a file path)");
            return 2;
        default:
            Console.Error.WriteLine($"error: unknown argument '{args[i]}'; usage: KubeApiTestServer.Host [--port 6443] [--address 127.0.0.1] [--kubeconfig PATH]");
            return 2;
    }
}

KubeApiServer server;
try
{
    server = await KubeApiServer.StartAsync(new KubeApiServerOptions { Port = port, ListenAddress = address, RequireNamespaces = true });
}
catch (IOException e)
{
    Console.Error.WriteLine($"error: cannot listen on {address}:{port}: {e.Message}");
    return 1;
}

await using (server)
{
    kubeconfig ??= Path.Combine(Path.GetTempPath(), $"hybridserving-kubeapi-{new Uri(server.Url).Port}.kubeconfig");
    server.WriteKubeConfig(kubeconfig);
    Console.WriteLine($"Kubernetes API test server listening on {server.Url} (in memory; stops with Ctrl+C)");
    Console.WriteLine($"kubeconfig: {kubeconfig}");
    Console.WriteLine($"  export KUBECONFIG={kubeconfig}");
    Console.WriteLine("  kubectl apply -k k8s/ && kubectl get lora -A");
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stop.Cancel();
    };
    AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();
    try
    {
        await Task.Delay(Timeout.Infinite, stop.Token);
    }
    catch (OperationCanceledException)
    {
        // Ctrl+C or SIGTERM: stop serving.
    }
}

return 0;
