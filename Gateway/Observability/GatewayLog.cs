namespace HybridServing.Gateway.Observability;

/// <summary>Start-up messages of the gateway (event ids 1-99).</summary>
internal static partial class GatewayLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information,
        Message = "Gateway ready to map: picking policy {Policy}, {Tenants} tenant keys, API key required: {RequireApiKey}, ControlPlane at {ControlPlane}.")]
    public static partial void Started(ILogger logger, string policy, int tenants, bool requireApiKey, string? controlPlane);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning,
        Message = "No tenants are configured and an API key is required: every inference request will get 401. Configure Gateway:Tenants or Gateway:Tenancy:KeysFile, or set Gateway:Tenancy:RequireApiKey=false for an open gateway.")]
    public static partial void NoTenants(ILogger logger);
}
