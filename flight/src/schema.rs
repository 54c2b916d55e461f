//! The Flight service as served: the Flight SQL service plus `GetSchema`.
//!
//! arrow-flight implements `FlightService` for every `FlightSqlService` and
//! answers `GetSchema` with `UNIMPLEMENTED` there, out of reach of an
//! override. ADBC's `adbc_execute_schema` (and tools that ask for a result's
//! columns before running it) call `GetSchema`, so this wrapper answers it —
//! with exactly the schema GetFlightInfo would announce — and hands every
//! other call to the Flight SQL service unchanged.

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, TicketStatementQuery};
use arrow_flight::{
    Action, CancelFlightInfoRequest, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, PollInfo, SchemaResult,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::service::GyrusFlightSql;

/// What `gyrus serve` puts on the wire.
pub struct GyrusFlightService(pub Arc<GyrusFlightSql>);

type Sql = GyrusFlightSql;

#[tonic::async_trait]
impl FlightService for GyrusFlightService {
    type HandshakeStream = <Sql as FlightService>::HandshakeStream;
    type ListFlightsStream = <Sql as FlightService>::ListFlightsStream;
    type DoGetStream = <Sql as FlightService>::DoGetStream;
    type DoPutStream = <Sql as FlightService>::DoPutStream;
    type DoExchangeStream = <Sql as FlightService>::DoExchangeStream;
    type DoActionStream = <Sql as FlightService>::DoActionStream;
    type ListActionsStream = <Sql as FlightService>::ListActionsStream;

    /// The schema GetFlightInfo announces, without leaving a query behind.
    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let metadata = request.metadata().clone();
        let info: FlightInfo = FlightService::get_flight_info(&*self.0, request)
            .await?
            .into_inner();
        // A planned statement's ticket is withdrawn at once; metadata tickets hold nothing.
        let planned = info
            .endpoint
            .first()
            .and_then(|e| e.ticket.as_ref())
            .and_then(|t| Any::decode(&*t.ticket).ok())
            .is_some_and(|any| any.is::<TicketStatementQuery>());
        if planned {
            let cancel = Action {
                r#type: "CancelFlightInfo".into(),
                body: CancelFlightInfoRequest::new(info.clone())
                    .encode_to_vec()
                    .into(),
            };
            let mut request = Request::new(cancel);
            *request.metadata_mut() = metadata;
            FlightService::do_action(&*self.0, request).await?;
        }
        Ok(Response::new(SchemaResult {
            schema: info.schema,
        }))
    }

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&*self.0, request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(&*self.0, request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(&*self.0, request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        FlightService::poll_flight_info(&*self.0, request).await
    }

    async fn do_get(
        &self,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        FlightService::do_get(&*self.0, request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        FlightService::do_put(&*self.0, request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(&*self.0, request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(&*self.0, request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(&*self.0, request).await
    }
}
