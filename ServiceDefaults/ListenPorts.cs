using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Configuration;

namespace HybridServing.ServiceDefaults;

/// <summary>
/// A service's own listen ports, checked before it starts: a port already held (the local stack's engine-0 on 8000
/// while the README's standalone MockEngine example asks for 8000 too) is one line naming the port and the way
/// out, exit code 3, instead of Kestrel's critical log and a stack trace.
/// </summary>
public static class ListenPorts
{
    public const int InUseExitCode = 3;

    /// <summary>One address a service will listen on, and what the user changes to move it.</summary>
    public sealed record Listen(string Host, int Port, string Setting);

    /// <summary>
    /// The addresses ASP.NET Core will bind from configuration: every <c>Kestrel:Endpoints:{name}:Url</c>, else
    /// <c>urls</c> (<c>ASPNETCORE_URLS</c>), else ASP.NET Core's default <c>http://localhost:5000</c>.
    /// </summary>
    public static IReadOnlyList<Listen> FromConfiguration(IConfiguration configuration)
    {
        var listens = new List<Listen>();
        foreach (var endpoint in configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Url"] is { Length: > 0 } url && Parse(url) is { } l)
                listens.Add(l with { Setting = $"Kestrel__Endpoints__{endpoint.Key}__Url" });
        }
        if (listens.Count > 0) return listens;
        if (configuration["urls"] is { Length: > 0 } urls)
        {
            foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                if (Parse(url) is { } l) listens.Add(l with { Setting = "ASPNETCORE_URLS" });
            return listens;
        }
        return configuration["http_ports"] is { Length: > 0 } || configuration["https_ports"] is { Length: > 0 }
            ? []
            : [new Listen("localhost", 5000, "ASPNETCORE_URLS (or Kestrel__Endpoints__Http__Url)")];
    }

    private static Listen? Parse(string url)
    {
        // http://+:80 and http://*:80 are Kestrel's wildcards; Uri does not parse them.
        var normalized = url.Replace("://+", "://0.0.0.0", StringComparison.Ordinal).Replace("://*", "://0.0.0.0", StringComparison.Ordinal);
        return Uri.TryCreate(normalized, UriKind.Absolute, out var uri) && uri.Port is > 0 and < 65536
            ? new Listen(uri.Host.Trim('[', ']'), uri.Port, "")
            : null;
    }

    /// <summary>The one line to print when a port is held, or null when every port can be bound now.</summary>
    public static string? Problem(IEnumerable<Listen> listens)
    {
        foreach (var listen in listens)
        {
            if (listen.Port == 0) continue;
            IPAddress[] addresses = listen.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? [IPAddress.Loopback]
                : IPAddress.TryParse(listen.Host, out var ip) ? [ip]
                : [IPAddress.Any];
            foreach (var address in addresses)
            {
                try
                {
                    using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                    socket.Bind(new IPEndPoint(address, listen.Port));
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
                {
                    var why = e.SocketErrorCode == SocketError.AccessDenied ? "may not be bound by this user" : "is in use";
                    return $"port {listen.Port} {why} on {listen.Host}: stop what holds it (e.g. the local stack: `dotnet run --project AppHost` takes 8000-8002, 8010-8012, 8020-8022, 8080-8083) or choose another with {listen.Setting}";
                }
            }
        }
        return null;
    }

    /// <summary>
    /// Checks <paramref name="listens"/> (default: the configured endpoints), then runs the app. A held port is
    /// one line on stderr and exit code 3; so is losing the race to bind it after the check.
    /// </summary>
    public static int RunChecked(this WebApplication app, IReadOnlyList<Listen>? listens = null)
    {
        listens ??= FromConfiguration(app.Configuration);
        if (Problem(listens) is { } problem)
        {
            Console.Error.WriteLine($"error: {problem}");
            return InUseExitCode;
        }
        try
        {
            app.Run();
            // A service that stopped itself for a reason (the sidecar whose engine never got healthy) set it.
            return Environment.ExitCode;
        }
        catch (IOException e) when (e.InnerException is AddressInUseException)
        {
            Console.Error.WriteLine($"error: {e.Message} (choose another port with {string.Join(" or ", listens.Select(l => l.Setting).Distinct())})");
            return InUseExitCode;
        }
    }
}
